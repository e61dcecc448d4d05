"""Throughput and verdicts per minute, kept in Redis for the dashboard's Stats page.

One hash per minute (``keys.stats_minute``: ``total`` and ``verdict:<verdict>``), written by the
result step once per batch (one pipeline) and expiring after ``DSXCONNECT_METRICS__HISTORY_HOURS``:
at most 24 × 60 small hashes by default, whatever the throughput. Only results stored for the first
time are counted, so a redelivered task adds nothing. Counted after the batch is stored: a worker
killed in between loses that batch from the curve (never from the store's totals).
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any

import redis
from pydantic import BaseModel, Field

from dsx_connect import keys

STEP_S = 60


class StatsHistory(BaseModel):
    """Results stored per minute, oldest first: ``total[i]`` and ``verdicts[v][i]`` count the minute
    starting at ``start + i × step_s`` (the current minute last, still filling)."""

    start: datetime = Field(description="start of the first minute (UTC)")
    step_s: int = Field(default=STEP_S, description="seconds per point")
    total: list[int] = Field(description="results stored in each minute")
    verdicts: dict[str, list[int]] = Field(description="the same, per verdict (verdicts seen in the window)")


def record(
    client: redis.Redis, events: Iterable[dict[str, Any]], keep_s: int, now: float | None = None
) -> None:
    """Count ``events`` (stored results) in the current minute's hash: one round trip."""
    verdicts = Counter(str(event.get("verdict")) for event in events)
    if not verdicts:
        return
    key = keys.stats_minute(int((time.time() if now is None else now) // STEP_S))
    pipe = client.pipeline(transaction=False)
    pipe.hincrby(key, "total", sum(verdicts.values()))
    for verdict, count in verdicts.items():
        pipe.hincrby(key, f"verdict:{verdict}", count)
    pipe.expire(key, keep_s + STEP_S)
    pipe.execute()


def read(client: redis.Redis, minutes: int, now: float | None = None) -> StatsHistory:
    """The last ``minutes`` minutes, the current one included; minutes without results count zero."""
    last = int((time.time() if now is None else now) // STEP_S)
    first = last - minutes + 1
    pipe = client.pipeline(transaction=False)
    for minute in range(first, last + 1):
        pipe.hgetall(keys.stats_minute(minute))
    total = [0] * minutes
    verdicts: dict[str, list[int]] = {}
    for i, fields in enumerate(pipe.execute()):
        for field, value in fields.items():
            name = field.decode() if isinstance(field, bytes) else field
            if name == "total":
                total[i] = int(value)
            elif name.startswith("verdict:"):
                verdicts.setdefault(name.split(":", 1)[1], [0] * minutes)[i] = int(value)
    return StatsHistory(
        start=datetime.fromtimestamp(first * STEP_S, tz=UTC),
        total=total,
        verdicts=dict(sorted(verdicts.items())),
    )
