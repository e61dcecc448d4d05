"""The intake's fast path for unchanged items: served from the index before any scan task exists.

When a connector submits a batch, the API records every item as accepted (counts, pending lease)
exactly as before, then looks the batch up in the unchanged-object index with the scan step's own
rules (:class:`~dsx_connect.cache.step.ScanCache`: same identity, same freshness, forced jobs
excluded). Hits go straight to the step after the scan: the result step, or the action step for a
verdict that has an action (a cached Malicious file is acted on again, as configured). Misses are
published as scan tasks. A cached item therefore costs no scan task, no scan-worker pass and no
re-publish; its result and its §7 event (``scanner.cached: true``) are recorded as before.

Items of a paused or cancelled job are left to the scan step, which holds or skips them. A hit
whose message is lost is still pending with its lease: the sweep sends it again as a scan task,
which the scan step serves from the index. A lookup that fails serves nothing (every item is
published as a scan task): the cache never fails an intake.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable
from typing import Any

import redis

from dsx_connect.cache.step import ScanCache, build_for
from dsx_connect.settings import Settings
from dsx_connect.state.jobs import JobStore
from dsx_connect.workers.outcome import ConnectorRef, ItemOutcome
from shared.models import RegisteredConnector, ScanTask

log = logging.getLogger(__name__)

SendOutcomes = Callable[[str, list[Any]], None]  # stage ("action" | "result"), outcomes as JSON text

_caches: dict[int, ScanCache] = {}


def intake_cache(settings: Settings, client: redis.Redis) -> ScanCache | None:
    """This process's cache for the intake, or None when the cache or its intake path is off."""
    if not (settings.scan_cache.enabled and settings.scan_cache.at_intake):
        return None
    cache = _caches.get(os.getpid())
    if cache is None:
        from dsx_connect.workers.hot_path import ScanConfig

        cache = _caches[os.getpid()] = build_for(settings, client, ScanConfig.from_settings(settings))
    return cache


def serve_unchanged(
    cache: ScanCache,
    tasks: list[ScanTask],
    connectors: dict[str, RegisteredConnector],
    jobs: JobStore,
    action_verdicts: list[str],
    send: SendOutcomes,
) -> list[ScanTask]:
    """Send the batch's unchanged items on as outcomes; returns the tasks still to scan, in order."""
    candidates = [task for task in tasks if task.item_version]
    if not candidates:
        return tasks
    live: dict[str, bool] = {}
    for job_id in {task.job_id for task in candidates}:
        paused, cancelled = jobs.flags(job_id)
        live[job_id] = not (paused or cancelled)
    items = [
        (task, ConnectorRef.of(connectors[task.connector_uuid])) for task in candidates if live[task.job_id]
    ]
    hits, _ = cache.split(items) if items else ([], items)
    if not hits:
        return tasks
    acted: list[ItemOutcome] = []
    stored: list[ItemOutcome] = []
    for outcome in hits:
        (acted if outcome.needs_action(action_verdicts) else stored).append(outcome)
    if acted:
        send("action", [outcome.dump_json() for outcome in acted])
    if stored:
        send("result", [outcome.dump_json() for outcome in stored])
    served = {outcome.task.id for outcome in hits}
    log.debug("intake: %d of %d items served from the scan cache", len(served), len(tasks))
    return [task for task in tasks if task.id not in served]
