"""Result step: store each item's result once, count it, and hand new ones to notification."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

import redis

from dsx_connect.metrics.results_hook import count_stored
from dsx_connect.results.recorder import record_history
from dsx_connect.results.rows import encode_event
from dsx_connect.settings import Settings
from dsx_connect.state.results import ResultStore
from dsx_connect.workers.context import WorkerContext
from dsx_connect.workers.outcome import ItemOutcome
from shared.models import utcnow_iso

log = logging.getLogger(__name__)


def run_store_batch(ctx: WorkerContext, items: list[ItemOutcome]) -> list[dict[str, Any]]:
    """Store the batch's results; returns the events stored for the first time (duplicates dropped)."""
    return store_outcomes(ctx.settings, ctx.client, ctx.results, items)


def store_outcomes(
    settings: Settings,
    client: redis.Redis,
    results: ResultStore,
    items: Sequence[ItemOutcome],
    *,
    accepting: bool = False,
) -> list[dict[str, Any]]:
    """Store ``items``' results (SQL history first, then Redis); returns the events new to the store.

    ``accepting``: the items were never recorded as accepted (the intake's unchanged items), so each
    one stored for the first time is counted as accepted too (``ResultStore.store_many``).
    """
    stored_at = utcnow_iso()  # once per batch: one Redis call stores them all, within milliseconds
    events = [item.event_dict(stored_at) for item in items]
    encoded = [encode_event(event) for event in events]  # once, for the history and for Redis
    # the durable SQL history (if any) takes the whole batch first, duplicates too (it is idempotent):
    # once Redis counts a job complete, the history holds every result of it
    record_history(settings.results_db, client, events, encoded)
    stored = results.store_many(
        events, [item.task.job_item_id for item in items], encoded=encoded, accepting=accepting
    )
    duplicates = len(events) - sum(stored)
    if duplicates:
        log.info("ignored %d results already stored (redelivered task)", duplicates)
    # the new ones were queued for the SIEM feed by the same Redis call (ResultStore.feed)
    new = [event for event, new in zip(events, stored, strict=True) if new]
    count_stored(client, settings.metrics, new)  # counters and the per-minute history
    return new
