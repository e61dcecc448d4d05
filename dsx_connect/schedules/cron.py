"""Cron expressions of schedules: five fields (minute hour day-of-month month day-of-week) in a
time zone, parsed by ``cronsim`` (which also follows daylight-saving changes of the zone).

Slots are whole minutes: :func:`latest_slot` is the newest firing time at or before a moment,
:func:`next_slot` the first one after it. Times are Unix seconds (UTC) at the boundaries.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from cronsim import CronSim, CronSimError

FIELDS = ("minute", "hour", "day-of-month", "month", "day-of-week")


class CronError(ValueError):
    """A cron expression or time zone that cannot be used; ``field`` names the part at fault."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field


def zone(name: str) -> ZoneInfo:
    """The IANA time zone ``name`` (``UTC``, ``Europe/Berlin``, …)."""
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise CronError(
            "timezone", f"unknown time zone {name!r} (use an IANA name such as UTC or Europe/Berlin)"
        ) from None


def validate(expr: str, tz: str = "UTC") -> str:
    """The expression normalised (single spaces); :class:`CronError` naming the bad field otherwise."""
    parts = expr.split()
    if len(parts) != len(FIELDS):
        raise CronError(
            "cron",
            f"a cron expression has 5 fields (minute hour day-of-month month day-of-week), got {len(parts)}",
        )
    normal = " ".join(parts)
    start = datetime.now(zone(tz))
    try:
        CronSim(normal, start)
    except CronSimError as exc:  # cronsim says "Bad minute", "Bad day-of-week", …
        text = str(exc)
        field = next((f for f in FIELDS if text.lower().endswith(f)), "cron")
        value = parts[FIELDS.index(field)] if field in FIELDS else normal
        raise CronError(field, f"cron {field} field {value!r} is not valid ({text})") from None
    if next_slot(normal, tz, start.timestamp()) is None:  # e.g. "0 0 */10 * 1#4": the 4th Monday is day 22-28
        raise CronError("cron", f"cron expression {normal!r} never fires")
    return normal


def _at(ts: float, tz: str) -> datetime:
    return datetime.fromtimestamp(ts, UTC).astimezone(zone(tz))


def next_slot(expr: str, tz: str, after_ts: float) -> float | None:
    """The first firing time strictly after ``after_ts``; None if the expression never fires."""
    try:
        return next(CronSim(expr, _at(after_ts, tz))).timestamp()
    except StopIteration:
        return None


#: further back than any daylight-saving shift (an hour; 30 minutes on Lord Howe Island)
_DST_MARGIN_S = 3 * 3600


def latest_slot(expr: str, tz: str, at_ts: float) -> float | None:
    """The newest firing time at or before ``at_ts``, as the forward walk of :func:`next_slot` (what
    ``next_run`` shows) has it.

    cronsim's reverse walk disagrees with its forward walk around daylight-saving changes (on a
    fall-back day it skipped the repeated hour's slots and gave the 03:00 slot an hour early), so
    it only finds where to start: the forward walk from a margin before it decides.
    """
    try:  # strictly before its start, and slots are whole minutes: start a second later
        hint = next(CronSim(expr, _at(at_ts, tz) + timedelta(seconds=1), reverse=True)).timestamp()
    except StopIteration:
        hint = at_ts
    near = at_ts - 86400 <= hint <= at_ts  # offsets change at most twice a year: not twice in a day
    if near and _at(hint - _DST_MARGIN_S, tz).utcoffset() == _at(at_ts, tz).utcoffset():
        return hint  # no change of offset anywhere near: the walks agree
    latest = None
    for fire in CronSim(expr, _at(min(hint, at_ts) - _DST_MARGIN_S, tz)):
        ts = fire.timestamp()
        if ts > at_ts:
            break
        latest = ts
    return latest
