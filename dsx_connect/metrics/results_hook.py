"""What the result step counts for each batch of newly stored results: the verdict, action and
cache-hit counters (one increment per distinct label, not per item) and the per-minute history."""

from __future__ import annotations

import logging
from collections import Counter
from typing import Any

import redis

from dsx_connect.metrics import instruments
from dsx_connect.metrics.settings import MetricsSettings
from dsx_connect.state import stats_history as history

log = logging.getLogger(__name__)


def count_stored(client: redis.Redis, settings: MetricsSettings, events: list[dict[str, Any]]) -> None:
    """Count a batch of results stored for the first time."""
    if not events:
        return
    verdicts = Counter(str(event.get("verdict")) for event in events)
    for verdict, count in verdicts.items():
        instruments.VERDICTS.labels(verdict).inc(count)
    actions: Counter[tuple[str, str]] = Counter()
    for event in events:
        action = event.get("action") or {}
        status = str(action.get("status") or "nothing")
        if status != "nothing":  # "nothing": no action was due (a benign verdict, no action set)
            actions[(str(action.get("requested") or "nothing"), status)] += 1
    for (requested, status), count in actions.items():
        instruments.ACTION_OUTCOMES.labels(requested, status).inc(count)
    # the verdict cache marks what it served in the event (scanner.cached, SPEC §7): counted here,
    # once per stored result, so the cache itself needs no metrics code
    cached = sum(1 for event in events if (event.get("scanner") or {}).get("cached"))
    if cached:
        instruments.SCAN_CACHE_HITS.inc(cached)
    if settings.history:
        try:
            history.record(client, events, settings.history_hours * 3600)
        except redis.RedisError as exc:  # the results are stored: only the curve misses this batch
            log.warning("stats history: a batch of %d results not counted: %r", len(events), exc)
