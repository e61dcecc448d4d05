"""Cron expressions and schedule bodies: what is refused (naming the field) and when slots fall."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from pydantic import ValidationError

from dsx_connect.schedules import cron
from dsx_connect.schedules.models import ScheduleSpec

pytestmark = pytest.mark.unit


def ts(text: str) -> float:
    return datetime.fromisoformat(text).timestamp()


@pytest.mark.parametrize(
    ("expr", "field"),
    [
        ("61 * * * *", "minute"),
        ("* 24 * * *", "hour"),
        ("* * 32 * *", "day-of-month"),
        ("* * * 13 *", "month"),
        ("* * * * 8", "day-of-week"),
        ("*/0 * * * *", "minute"),
        ("0 0 30 2 *", "day-of-month"),  # never fires
    ],
)
def test_a_bad_field_is_named(expr: str, field: str) -> None:
    with pytest.raises(cron.CronError) as caught:
        cron.validate(expr)
    assert caught.value.field == field
    assert field in str(caught.value)


@pytest.mark.parametrize("expr", ["* * * *", "0 0 * * * *", "@daily", ""])
def test_only_five_fields_are_accepted(expr: str) -> None:
    with pytest.raises(cron.CronError, match="5 fields"):
        cron.validate(expr)


def test_an_unknown_time_zone_is_refused() -> None:
    with pytest.raises(cron.CronError) as caught:
        cron.validate("0 2 * * *", "Mars/Olympus_Mons")
    assert caught.value.field == "timezone"


def test_a_body_with_a_bad_cron_names_the_cron_field() -> None:
    with pytest.raises(ValidationError) as caught:
        ScheduleSpec.model_validate({"cron": "0 25 * * *"})
    (error,) = caught.value.errors()
    assert error["loc"] == ("cron",) and "hour" in error["msg"]


def test_a_body_with_a_bad_zone_names_the_timezone_field() -> None:
    with pytest.raises(ValidationError) as caught:
        ScheduleSpec.model_validate({"cron": "0 2 * * *", "timezone": "Nowhere/City"})
    assert [e["loc"] for e in caught.value.errors()] == [("timezone",)]


def test_a_body_needs_a_cron_or_the_rescan_flag() -> None:
    with pytest.raises(ValidationError, match="cron expression, rescan_on_scanner_change"):
        ScheduleSpec.model_validate({})
    assert ScheduleSpec.model_validate({"rescan_on_scanner_change": True}).cron is None


def test_unknown_fields_are_refused() -> None:
    with pytest.raises(ValidationError, match="crontab"):
        ScheduleSpec.model_validate({"cron": "0 2 * * *", "crontab": "x"})


def test_the_expression_is_normalised_and_utc_is_the_default() -> None:
    spec = ScheduleSpec.model_validate({"cron": "  0   2 * *  1-5 "})
    assert (spec.cron, spec.timezone) == ("0 2 * * 1-5", "UTC")


def test_the_latest_slot_includes_the_moment_itself_and_the_next_one_excludes_it() -> None:
    at = ts("2026-01-01T00:15:00+00:00")
    assert cron.latest_slot("*/15 * * * *", "UTC", at) == at
    assert cron.latest_slot("*/15 * * * *", "UTC", at - 1) == ts("2026-01-01T00:00:00+00:00")
    assert cron.next_slot("*/15 * * * *", "UTC", at) == ts("2026-01-01T00:30:00+00:00")


def test_slots_follow_the_time_zone_across_daylight_saving() -> None:
    # 02:30 every day in Berlin: in winter 01:30 UTC, in summer 00:30 UTC
    winter = cron.next_slot("30 2 * * *", "Europe/Berlin", ts("2026-01-10T12:00:00+00:00"))
    summer = cron.next_slot("30 2 * * *", "Europe/Berlin", ts("2026-07-10T12:00:00+00:00"))
    assert winter is not None and summer is not None
    assert datetime.fromtimestamp(winter, UTC).hour == 1
    assert datetime.fromtimestamp(summer, UTC).hour == 0


def test_an_expression_that_never_fires_is_refused() -> None:
    # the 4th Monday is always day 22-28, never the 1st, 11th, 21st or 31st
    with pytest.raises(cron.CronError, match="never fires") as caught:
        cron.validate("0 0 */10 * 1#4")
    assert caught.value.field == "cron"


def forward_slots(expr: str, tz: str, start: float, end: float) -> list[float]:
    """Every slot in (start, end] as the forward walk (``next_run``) has them."""
    slots, at = [], start
    while (slot := cron.next_slot(expr, tz, at)) is not None and slot <= end:
        slots.append(slot)
        at = slot
    return slots


@pytest.mark.parametrize(
    ("expr", "tz", "change"),
    [
        ("0 3 * * *", "Europe/Berlin", "2026-10-25T01:00:00+00:00"),  # fall back
        ("*/15 * * * *", "Europe/Berlin", "2026-10-25T01:00:00+00:00"),
        ("*/30 2 * * *", "Europe/Berlin", "2026-03-29T01:00:00+00:00"),  # spring forward
        ("0 1-3 * * *", "America/New_York", "2026-11-01T06:00:00+00:00"),
        ("45 */1 * * *", "America/Santiago", "2026-04-05T03:00:00+00:00"),
        ("30 2 * * *", "Australia/Lord_Howe", "2026-04-04T15:00:00+00:00"),  # a 30-minute shift
    ],
)
def test_across_a_daylight_saving_change_the_scheduler_runs_exactly_the_slots_next_run_shows(
    expr: str, tz: str, change: str
) -> None:
    """Polled every 5 s through the change, ``latest_slot`` runs each slot of the forward walk once,
    on time, and nothing else (cronsim's reverse walk ran a fall-back day's 03:00 an hour early and
    skipped the repeated hour)."""
    start, end = ts(change) - 6 * 3600, ts(change) + 6 * 3600
    expected = forward_slots(expr, tz, start, end)
    ran: list[tuple[float, float]] = []
    last = start
    for at in range(int(start), int(end) + 1, 5):
        slot = cron.latest_slot(expr, tz, at)
        if slot is not None and slot > last:
            ran.append((slot, at))
            last = slot
    assert [slot for slot, _ in ran] == expected
    assert all(0 <= at - slot < 5 for slot, at in ran), "each slot runs within one poll of its time"
