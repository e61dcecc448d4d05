"""No silent drop: what becomes of a task whose step raised.

Celery's Redis transport treats a task rejected without requeue as acknowledged, and Celery rejects
a late-acknowledged task that failed (``task_acks_on_failure_or_timeout=False``) or whose retry
could not be published exactly that way: the batch would be gone. So every task runs its step
through :func:`run_guarded`, which ends in one of three ways, for every exception class:

* **completes**: the step returned;
* **retries**: a transient Redis or broker error (connection lost, timeout, a replica that became
  read-only during a failover, a server still loading its AOF, ``maxmemory`` refusing writes) is
  retried as a whole task with capped exponential backoff and jitter, up to ``TASK_MAX_RETRIES``;
* **dead letters**: an unexpected error, or transient errors past every retry, puts each item of
  the batch in the dead-letter store with the reason (and, for the scan and action steps, a
  visible failed result, as for an item out of retries).

When even that cannot be written (Redis is gone), or the broker refuses the retry, the message is
rejected *with* requeue: it goes back to its queue, or, if Redis cannot take that either, it stays
in the transport's unacknowledged set and is delivered again after the visibility timeout. Nothing
is acknowledged without a result, a retry or a dead letter.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Callable
from typing import Any

import redis.exceptions
from celery import Task
from celery.exceptions import Ignore, Reject, Retry
from kombu.exceptions import OperationalError

from dsx_connect.state.dead_letters import DeadLetter, Stage
from dsx_connect.workers.context import WorkerContext
from dsx_connect.workers.outcome import ConnectorRef, ItemOutcome
from shared.backoff import equal_jitter
from shared.models import EventAction, EventError, ScanTask

log = logging.getLogger(__name__)

#: Errors of Redis or the broker that pass: the whole task is retried.
TRANSIENT_ERRORS: tuple[type[BaseException], ...] = (
    redis.exceptions.ConnectionError,  # includes Sentinel's MasterNotFoundError
    redis.exceptions.TimeoutError,
    redis.exceptions.ReadOnlyError,  # a replica promoted late, or a stale connection after failover
    redis.exceptions.BusyLoadingError,  # a restarted server still loading its AOF
    redis.exceptions.TryAgainError,
    redis.exceptions.OutOfMemoryError,  # maxmemory + noeviction: writes refused until memory frees
    redis.exceptions.MasterDownError,
    OperationalError,
)
TASK_MAX_RETRIES = 30

StoreFailed = Callable[[list[ItemOutcome]], None]


def transient(exc: BaseException) -> bool:
    """Redis or broker trouble that passes: a transient error class, or any error raised inside the
    broker client's transport (kombu, losing its connection mid-publish while Redis restarts, raises
    ``AttributeError`` there)."""
    if isinstance(exc, TRANSIENT_ERRORS):
        return True
    if isinstance(exc, redis.exceptions.ResponseError):  # a command Redis refused: not going to pass
        return False
    tb = exc.__traceback__
    while tb is not None and tb.tb_next is not None:
        tb = tb.tb_next
    where = tb.tb_frame.f_code.co_filename if tb is not None else ""
    return any(part in where for part in _CLIENT_CODE)


_CLIENT_CODE = ("/kombu/transport/", "/kombu/connection.py")  # redis-py's own errors are typed


def run_guarded(
    task: Task,
    stage: Stage | None,
    items: list[Any],
    body: Callable[[], int],
    context: Callable[[], WorkerContext],
    store_failed: StoreFailed | None = None,
) -> int:
    """Run ``body`` (the step); on an exception retry, dead-letter or requeue, never drop.

    ``stage`` None (notifications) only logs an unexpected error: the results are stored, and
    readers resume from the stored sequence, so a lost notification loses no data.
    """
    try:
        return body()
    except (Retry, Reject, Ignore):
        raise
    except Exception as exc:
        if transient(exc):
            retries = int(task.request.retries or 0)
            if retries < TASK_MAX_RETRIES:
                workers = context().settings.workers
                countdown = equal_jitter(retries + 1, workers.retry_backoff_s, workers.retry_backoff_max_s)
                log.warning("%s task retried in %.1fs: %r", stage or "notify", countdown, exc)
                try:
                    raise task.retry(exc=exc, countdown=countdown, max_retries=None) from None
                except Reject as refused:  # the broker took no retry: the message must stay
                    raise Reject(refused.reason, requeue=True) from None
            reason = f"gave up after {retries + 1} attempts on Redis/broker errors: {exc!r}"
        else:
            log.exception("%s task failed unexpectedly", stage or "notify")
            reason = f"unexpected error in the {stage or 'notify'} step: {exc!r}"
    if stage is None:
        return 0
    try:
        letters, failed = dead_letters_for(stage, items, reason[:2000])
        context().dead_letters.add_many(letters)
        if failed and store_failed is not None:
            store_failed(failed)
    except Exception as exc:
        log.error(
            "%s task: cannot dead-letter its %d items (%r); sent back to the queue", stage, len(items), exc
        )
        raise Reject(reason, requeue=True) from None
    log.error("%s task: %d items dead-lettered: %s", stage, len(letters), reason)
    return 0


def dead_letters_for(
    stage: Stage, items: list[Any], reason: str
) -> tuple[list[DeadLetter], list[ItemOutcome]]:
    """The dead letter of each item of a batch, and the failed outcomes to store as their results."""
    letters: list[DeadLetter] = []
    failed: list[ItemOutcome] = []
    for raw in items:
        try:
            if stage == "scan":
                task = ScanTask.load(raw)
                outcome = ItemOutcome(
                    task=task,
                    connector=ConnectorRef(uuid=task.connector_uuid, name=task.connector_name),
                    error=EventError(kind="exhausted", message=reason),
                )
                payload = task.model_copy(update={"attempt": 0}).model_dump(mode="json")
            else:
                outcome = ItemOutcome.load_many([raw])[0]
                task = outcome.task
                payload = outcome.model_copy(update={"action_attempt": 0}).dump()
                if stage == "action":
                    action = EventAction(
                        requested=outcome.planned_action().value, status="error", message=reason
                    )
                    outcome = outcome.model_copy(update={"action": action})
        except ValueError:  # a message this version cannot read: kept as it came
            if isinstance(raw, dict) and set(raw) == {"unreadable"}:  # such a letter requeued: the same
                text = str(raw["unreadable"])
            else:
                text = raw if isinstance(raw, str) else json.dumps(raw, sort_keys=True, default=str)
            letters.append(
                DeadLetter(
                    id="unreadable-" + hashlib.sha256(text.encode()).hexdigest()[:24], stage=stage,
                    reason=reason, attempts=1, job_id="", connector_uuid="", location="",
                    payload={"unreadable": text[:100_000]},
                )
            )  # fmt: skip
            continue
        letters.append(
            DeadLetter(
                id=task.id, stage=stage, reason=reason, attempts=1, job_id=task.job_id,
                connector_uuid=task.connector_uuid, location=task.location, payload=payload,
            )
        )  # fmt: skip
        if stage != "result":
            failed.append(outcome)
    return letters, failed
