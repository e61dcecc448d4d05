"""Every task measured through Celery's signals, so the task code stays as it is: the time it
waited in its queue, its batch size, and the items in progress.

A publisher stamps each task message with the time it was sent (header ``dsx_sent_at``); the
worker subtracts it (or the end of the task's countdown, when later) at the task's start. Clocks
of different hosts differ: the wait is as exact as their NTP.
"""

from __future__ import annotations

import logging
import os
import time
from datetime import datetime
from typing import Any

from celery.signals import (
    before_task_publish,
    task_postrun,
    task_prerun,
    worker_process_shutdown,
    worker_ready,
)

from dsx_connect.metrics import instruments

log = logging.getLogger(__name__)

SENT_AT_HEADER = "dsx_sent_at"
_running: dict[str, tuple[str, int]] = {}  # task id -> (queue, items), while it runs


@before_task_publish.connect
def _stamp(headers: dict[str, Any] | None = None, **_: Any) -> None:
    if headers is not None:
        headers[SENT_AT_HEADER] = time.time()


def items_of(args: Any) -> int:
    """A batch task's first argument is its list of items; anything else counts as one."""
    if args and isinstance(args[0], list):
        return len(args[0])
    return 1


def queue_wait(sent_at: Any, eta: Any, now: float) -> float | None:
    """Seconds since the task became due: sent, or its countdown's end (``eta``, ISO 8601)."""
    if not isinstance(sent_at, int | float):
        return None
    due = float(sent_at)
    if isinstance(eta, str) and eta:
        try:
            due = max(due, datetime.fromisoformat(eta).timestamp())
        except ValueError:
            pass
    return max(now - due, 0.0)


@task_prerun.connect
def _started(task_id: str | None = None, task: Any = None, args: Any = None, **_: Any) -> None:
    if task is None or task_id is None:
        return
    request = task.request
    queue = (request.delivery_info or {}).get("routing_key") or "unknown"
    items = items_of(args)
    instruments.BATCH_SIZE.labels(queue).observe(items)
    instruments.ITEMS_IN_PROGRESS.labels(queue).inc(items)
    _running[task_id] = (queue, items)
    wait = queue_wait(request.get(SENT_AT_HEADER), request.get("eta"), time.time())
    if wait is not None:
        instruments.QUEUE_WAIT.labels(queue).observe(wait)


@task_postrun.connect
def _finished(task_id: str | None = None, **_: Any) -> None:
    running = _running.pop(task_id or "", None)
    if running is not None:
        instruments.ITEMS_IN_PROGRESS.labels(running[0]).dec(running[1])


@worker_process_shutdown.connect
def _process_gone(**_: Any) -> None:
    """A prefork child's in-progress gauge leaves with it (its counters and histograms stay)."""
    if instruments.multiproc_dir() is not None:
        from prometheus_client import multiprocess

        multiprocess.mark_process_dead(os.getpid())


@worker_ready.connect
def _serve_metrics(**_: Any) -> None:
    """``DSXCONNECT_METRICS__WORKER_PORT``: this worker serves its host's series itself (for workers
    that do not share PROMETHEUS_MULTIPROC_DIR with the API: their own container or pod)."""
    from dsx_connect.settings import get_settings

    port = get_settings().metrics.worker_port
    if not port:
        return
    from prometheus_client import start_http_server

    from dsx_connect.metrics.exposition import process_registry

    start_http_server(port, addr=get_settings().metrics.worker_addr, registry=process_registry())
    log.info("worker metrics served on %s:%d/metrics", get_settings().metrics.worker_addr, port)
