"""The four Celery tasks: thin shells that parse their payload and call the step's plain function.

Each task carries a batch of items (per-item tasks cap throughput near 80 files/s, PERFORMANCE.md);
results, counters and events stay per item. Item failures are handled per item inside the steps;
whatever a step raises goes through ``guard.run_guarded``: transient Redis/broker errors retry the
whole task with capped exponential backoff, anything else (or retries run out) dead-letters each
item with the reason, and what cannot even be dead-lettered goes back to the queue.
"""

from __future__ import annotations

from typing import Any

from celery import Task

from dsx_connect.queues import ACTION_TASK, NOTIFY_TASK, RESULT_TASK, SCAN_TASK, shown
from dsx_connect.workers.actions import run_action_batch
from dsx_connect.workers.celery_app import celery_app
from dsx_connect.workers.context import worker_context
from dsx_connect.workers.guard import run_guarded
from dsx_connect.workers.notify import run_notify_batch
from dsx_connect.workers.outcome import ItemOutcome, notification_args
from dsx_connect.workers.results import run_store_batch
from dsx_connect.workers.scan import Dispatch, run_scan_batch
from shared.models import ScanTask


def _dispatch() -> Dispatch:
    return Dispatch(
        rescan=lambda tasks, delay: scan_batch.apply_async(
            ([t.model_dump(mode="json") for t in tasks],), countdown=delay, **shown(tasks)
        ),
        act=lambda items: verdict_action_batch.apply_async(([i.dump_json() for i in items],), **shown(items)),
        store=lambda items: store_results_batch.apply_async(
            ([i.dump_json() for i in items],), **shown(items)
        ),
        notify=lambda tasks: notify_results_batch.apply_async(
            ([t.id for t in tasks], sorted({t.job_id for t in tasks})), **shown(tasks)
        ),
    )


@celery_app.task(name=SCAN_TASK, bind=True)
def scan_batch(self: Task, items: list[str | dict[str, Any]]) -> int:
    """Scan a batch of accepted scan requests."""

    def step() -> int:
        run_scan_batch(worker_context(), [ScanTask.load(i) for i in items], _dispatch())
        return len(items)

    return run_guarded(self, "scan", items, step, worker_context, _dispatch().store)


@celery_app.task(name=ACTION_TASK, bind=True)
def verdict_action_batch(self: Task, items: list[str | dict[str, Any]]) -> int:
    """Apply the verdict action of each item through its connector."""

    def requeue(retry: list[ItemOutcome], delay: float) -> None:
        verdict_action_batch.apply_async(([i.dump_json() for i in retry],), countdown=delay, **shown(retry))

    def step() -> int:
        outcomes = ItemOutcome.load_many(items)
        run_action_batch(worker_context(), outcomes, _dispatch(), requeue, attempt=self.request.id)
        return len(items)

    return run_guarded(self, "action", items, step, worker_context, _dispatch().store)


@celery_app.task(name=RESULT_TASK, bind=True)
def store_results_batch(self: Task, items: list[str | dict[str, Any]]) -> int:
    """Store results, update stats and job counters, then publish them."""

    def step() -> int:
        outcomes = ItemOutcome.load_many(items)
        events = run_store_batch(worker_context(), outcomes)
        # Every item is published, the ones a redelivered task found already stored too: the crash
        # that caused the redelivery may have come before their notification (SSE readers key on
        # the id). References, not bytes: the notifier reads the stored events back.
        ids, job_ids = notification_args(outcomes)
        notify_results_batch.apply_async((ids, job_ids), **shown(ids))
        return len(events)

    return run_guarded(self, "result", items, step, worker_context)


@celery_app.task(name=NOTIFY_TASK, bind=True)
def notify_results_batch(self: Task, request_ids: list[str], job_ids: list[str]) -> int:
    """Publish each result event (Redis pub/sub, read by the SSE streams) and job summaries."""
    return run_guarded(
        self,
        None,
        request_ids,
        lambda: run_notify_batch(worker_context(), request_ids, job_ids),
        worker_context,
    )
