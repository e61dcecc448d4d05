"""What the core and worker processes measure, declared once (names: Prometheus conventions).

With ``PROMETHEUS_MULTIPROC_DIR`` set (the local stack, compose, Helm), each process writes its
values to files in that folder and a scrape sums them over every process, prefork children and
processes already gone included (prometheus_client's multiprocess mode). The variable must be set
before ``prometheus_client`` is first imported: it chooses the value class at import time.
"""

from __future__ import annotations

import os
from pathlib import Path

from prometheus_client import Counter, Gauge, Histogram

from dsx_connect.queues import ALL_QUEUES

MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"


def multiproc_dir() -> Path | None:
    """The multiprocess folder, created when missing; None in single-process mode.

    Raises ``ValueError`` naming the variable when the folder cannot be made or written.
    """
    raw = os.environ.get(MULTIPROC_ENV)
    if not raw:
        return None
    path = Path(raw)
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ValueError(f"{MULTIPROC_ENV}={raw}: cannot create the metrics folder: {exc}") from None
    if not os.access(path, os.W_OK | os.X_OK):
        raise ValueError(f"{MULTIPROC_ENV}={raw}: the metrics folder is not writable")
    return path


multiproc_dir()  # before the first value is written: prometheus_client needs the folder to exist

# Latencies of one small file over the loopback are around a millisecond; a large one, seconds.
_LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 120.0)
_WAIT_BUCKETS = (0.005, 0.01, 0.05, 0.1, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0, 900.0)
_BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1000)

SCAN_DURATION = Histogram(
    "dsxconnect_scan_duration_seconds",
    "Time from asking for an item to its verdict, per item. mode=read_files: the scanner's round "
    "trip of bytes already read; mode=streamed: read and scan together (the bytes flow from the "
    "connector into the scanner as they arrive).",
    ["mode"],
    buckets=_LATENCY_BUCKETS,
)
CONNECTOR_READ_DURATION = Histogram(
    "dsxconnect_connector_read_duration_seconds",
    "Time of one read_files call to a connector (a group of small items read at once).",
    buckets=_LATENCY_BUCKETS,
)
QUEUE_WAIT = Histogram(
    "dsxconnect_queue_wait_seconds",
    "Time a task waited in its queue, from when it was sent (or its countdown ended) to its start.",
    ["queue"],
    buckets=_WAIT_BUCKETS,
)
BATCH_SIZE = Histogram(
    "dsxconnect_task_batch_items",
    "Items carried by one task, per queue.",
    ["queue"],
    buckets=_BATCH_BUCKETS,
)
ITEMS_IN_PROGRESS = Gauge(
    "dsxconnect_worker_items_in_progress",
    "Items of the tasks workers are running now, per queue.",
    ["queue"],
    multiprocess_mode="livesum",
)
VERDICTS = Counter(
    "dsxconnect_verdicts_total",
    "Results stored, by verdict (counted by the result step, once per item: a redelivered task's "
    "duplicates are not counted).",
    ["verdict"],
)
ACTION_OUTCOMES = Counter(
    "dsxconnect_action_outcomes_total",
    "Verdict actions, by action requested and outcome status (success, skipped, error, ...), as stored.",
    ["action", "status"],
)
DEAD_LETTERS = Counter(
    "dsxconnect_dead_letters_total",
    "Items put in the dead-letter store, by stage and reason class.",
    ["stage", "reason"],
)
SCAN_CACHE_HITS = Counter(
    "dsxconnect_scan_cache_hits_total",
    "Results stored whose verdict came from the verdict cache instead of a scan (scanner.cached in "
    "the result event; counted by the result step).",
)

#: the label values known in advance, exposed at zero before anything happens (so rate() works from
#: the first event and every dashboard panel has a series)
DEAD_LETTER_STAGES = ("scan", "action", "result")
DEAD_LETTER_REASONS = ("retries_exhausted", "unexpected_error", "other")


def reason_class(reason: str) -> str:
    """A dead letter's reason as a bounded label (the text itself names hosts, paths, errors)."""
    if "gave up after" in reason:
        return "retries_exhausted"
    if reason.startswith("unexpected error"):
        return "unexpected_error"
    return "other"


def initialise_labels() -> None:
    """Create the known label children at zero (at import, in every process)."""
    for stage in DEAD_LETTER_STAGES:
        for reason in DEAD_LETTER_REASONS:
            DEAD_LETTERS.labels(stage, reason)
    for mode in ("read_files", "streamed"):
        SCAN_DURATION.labels(mode)
    for queue in ALL_QUEUES:
        ITEMS_IN_PROGRESS.labels(queue)


initialise_labels()
