"""The four Celery tasks: thin shells that parse their payload and call the step's plain function.

Each task carries a batch of items (per-item tasks cap throughput near 80 files/s, PERFORMANCE.md);
results, counters and events stay per item. Infrastructure failures (Redis, broker) retry the whole
task with capped exponential backoff; item failures are handled per item inside the steps.
"""

from __future__ import annotations

from typing import Any

import redis.exceptions
from kombu.exceptions import OperationalError

from dsx_connect.queues import ACTION_TASK, NOTIFY_TASK, RESULT_TASK, SCAN_TASK, shown
from dsx_connect.workers.actions import run_action_batch
from dsx_connect.workers.celery_app import celery_app
from dsx_connect.workers.context import worker_context
from dsx_connect.workers.notify import run_notify_batch
from dsx_connect.workers.outcome import ItemOutcome
from dsx_connect.workers.results import run_store_batch
from dsx_connect.workers.scan import Dispatch, run_scan_batch
from shared.models import ScanTask

INFRA_ERRORS = (redis.exceptions.ConnectionError, redis.exceptions.TimeoutError, OperationalError)
RETRY = {
    "autoretry_for": INFRA_ERRORS,
    "retry_backoff": 1,
    "retry_backoff_max": 60,
    "retry_jitter": True,
    "max_retries": 30,
}


def _dispatch() -> Dispatch:
    return Dispatch(
        rescan=lambda tasks, delay: scan_batch.apply_async(
            ([t.model_dump(mode="json") for t in tasks],), countdown=delay, **shown(tasks)
        ),
        act=lambda items: verdict_action_batch.apply_async(([i.dump_json() for i in items],), **shown(items)),
        store=lambda items: store_results_batch.apply_async(
            ([i.dump_json() for i in items],), **shown(items)
        ),
    )


@celery_app.task(name=SCAN_TASK, **RETRY)
def scan_batch(items: list[dict[str, Any]]) -> int:
    """Scan a batch of accepted scan requests."""
    run_scan_batch(worker_context(), [ScanTask.model_validate(i) for i in items], _dispatch())
    return len(items)


@celery_app.task(name=ACTION_TASK, **RETRY)
def verdict_action_batch(items: list[str | dict[str, Any]]) -> int:
    """Apply the verdict action of each item through its connector."""

    def requeue(retry: list[ItemOutcome], delay: float) -> None:
        verdict_action_batch.apply_async(([i.dump_json() for i in retry],), countdown=delay, **shown(retry))

    run_action_batch(worker_context(), ItemOutcome.load_many(items), _dispatch(), requeue)
    return len(items)


@celery_app.task(name=RESULT_TASK, **RETRY)
def store_results_batch(items: list[str | dict[str, Any]]) -> int:
    """Store results, update stats and job counters, then publish them."""
    outcomes = ItemOutcome.load_many(items)
    events = run_store_batch(worker_context(), outcomes)
    # Every item is published, the ones a redelivered task found already stored too: the crash that
    # caused the redelivery may have come before their notification (SSE readers key on the id).
    # References, not bytes: the notifier reads the stored events back.
    ids = [o.task.id for o in outcomes]
    notify_results_batch.apply_async((ids, sorted({o.task.job_id for o in outcomes})), **shown(ids))
    return len(events)


@celery_app.task(name=NOTIFY_TASK, **RETRY)
def notify_results_batch(request_ids: list[str], job_ids: list[str]) -> int:
    """Publish each result event (Redis pub/sub, read by the SSE streams) and job summaries."""
    return run_notify_batch(worker_context(), request_ids, job_ids)
