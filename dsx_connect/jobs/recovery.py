"""Recovery of items the pipeline lost, per item: a lease on every pending item.

Celery's Redis transport pops a task (``BRPOP``) before it records it as unacknowledged; a worker
killed in between (or with the answer still in its socket) loses the task, and with it the items of
its batch. ``acks_late`` and the visibility timeout cannot bring those back: Redis no longer has them.

So every accepted item is kept in its job's pending hash (``keys.job_pending``: request id -> scan
task JSON) until its result is stored or it is skipped, with a lease in the job's due zset
(``keys.job_due``: request id -> deadline). The lease starts at acceptance and is renewed whenever a
step takes the item (``JobStore.renew_leases``): a retry, an open breaker or a paused job re-enqueue
it, and the next step that takes it renews it again. An item whose lease passed was held by no
worker for ``DSXCONNECT_JOBS__REDISPATCH_AFTER_S``: its message is gone, and the sweep sends it again
and renews its lease. This runs for every running or paused job, however busy the pipeline, and
never looks at the transport's private keys.

Steps are idempotent per request id (results stored once, actions claimed once and guarded by the
scanned version). An item sent again while its message was merely slow (queued behind a backlog for
longer than the lease) has two copies queued: each copy sent again is numbered (``ScanTask.resend``,
``keys.job_resent``) and the scan step drops a copy older than the item's newest, and one whose
item already has its result (``JobStore.triage``). So copies replace one another instead of piling
up, and the scanner sees the item once (twice only when two copies are taken at the same moment).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from typing import Any

from dsx_connect.state.jobs import JobStore

log = logging.getLogger(__name__)

Publish = Callable[[list[dict[str, Any]]], None]  # enqueues scan tasks (batched by the publisher)
PER_SWEEP = 5000  # items sent again per job and sweep at most: a huge loss drains over a few sweeps


def redispatch_expired_items(
    jobs: JobStore, job_ids: Sequence[str], lease_s: float, publish: Publish, now: float | None = None
) -> dict[str, int]:
    """Send again the pending items of ``job_ids`` whose lease passed; returns how many per job."""
    sent: dict[str, int] = {}
    for job_id in job_ids:
        found = jobs.claim_expired(job_id, lease_s, PER_SWEEP, now)
        if not found:
            continue
        publish(found)
        jobs.count_redispatched(job_id, len(found))
        log.warning(
            "sent again %d items no worker took within their lease (%.0f s)", len(found), lease_s,
            extra={"job_id": job_id},
        )  # fmt: skip
        sent[job_id] = len(found)
    return sent
