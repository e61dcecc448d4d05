"""The intake's fast path for unchanged items: accepted and stored before any task exists.

When a connector submits a batch, the API looks it up in the unchanged-object index with the scan
step's own rules (:class:`~dsx_connect.cache.step.ScanCache`: same identity, same freshness, forced
jobs excluded). An unchanged item whose verdict calls for no action is accepted and stored right
there, in one atomic Redis step (``ResultStore.store_many(accepting=True)``, the SQL history first),
and one notification task per batch publishes the events. It costs no scan task, no result task and
no pending lease; its result and its §7 event (``scanner.cached: true``) are those the result step
would have stored. The rest of the batch is accepted as before and published as scan tasks; a
cached verdict that has an action (a cached Malicious file) is among them, and the scan step serves
it from the index and acts on it again, as configured.

Items of a paused or cancelled job are left to the scan step, which holds or skips them. A lookup
that fails serves nothing (every item is scanned): the cache never fails an intake. A store that
fails fails the submission, which the connector retries; a resubmitted item already stored is a
duplicate, neither accepted nor counted twice.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable

import redis

from dsx_connect.cache.step import ScanCache, build_for
from dsx_connect.settings import Settings
from dsx_connect.state.jobs import JobStore
from dsx_connect.state.results import ResultStore
from dsx_connect.workers.context import result_store
from dsx_connect.workers.outcome import ConnectorRef, ItemOutcome, notification_args
from shared.models import RegisteredConnector, ScanTask

log = logging.getLogger(__name__)

StoreOutcomes = Callable[[list[ItemOutcome]], None]

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
    store: StoreOutcomes,
) -> list[ScanTask]:
    """Store the batch's unchanged items that need no action; returns the tasks still to accept and
    scan, in order."""
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
    served = [outcome for outcome in hits if not outcome.needs_action(action_verdicts)]
    if not served:
        return tasks
    store(served)
    ids = {outcome.task.id for outcome in served}
    log.debug("intake: %d of %d items served from the scan cache", len(ids), len(tasks))
    return [task for task in tasks if task.id not in ids]


def store_served(settings: Settings, client: redis.Redis) -> StoreOutcomes:
    """What stores the served items: accepted and stored at once, then one notification task."""
    from dsx_connect.queues import NOTIFY_TASK, shown
    from dsx_connect.workers.celery_app import celery_app
    from dsx_connect.workers.results import store_outcomes

    results = _result_store(settings, client)

    def store(outcomes: list[ItemOutcome]) -> None:
        store_outcomes(settings, client, results, outcomes, accepting=True)
        # every item is published, duplicates too (as the result step does: a crash may have come
        # between the store and the notification); the notifier reads the stored events back
        ids, job_ids = notification_args(outcomes)
        celery_app.send_task(NOTIFY_TASK, args=(ids, job_ids), **shown(ids))

    return store


_stores: dict[tuple[int, int], ResultStore] = {}


def _result_store(settings: Settings, client: redis.Redis) -> ResultStore:
    """One store per process and client (its Lua script registered once)."""
    key = (os.getpid(), id(client))
    store = _stores.get(key)
    if store is None:
        store = _stores[key] = result_store(settings, client)
    return store
