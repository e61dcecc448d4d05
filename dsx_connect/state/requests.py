"""Scan requests in Redis: their states, the queues they wait in, and the counts intake bounds them by.

The reads the intake's back-pressure and the request routes make (the writes of an accepted item
are the job store's, ``dsx_connect.state.jobs``).
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Sequence

import redis

from dsx_connect import keys


def request_state(client: redis.Redis, request_id: str) -> dict[str, str]:
    """The stored state of one scan request (empty when unknown or expired)."""
    state: dict[str, str] = client.hgetall(keys.request_state(request_id))
    return state


def jobs_of_requests(client: redis.Redis, request_ids: Sequence[str]) -> dict[str, str]:
    """The job each already-known request was accepted into (unknown ones are left out)."""
    pipe = client.pipeline(transaction=False)
    for request_id in request_ids:
        pipe.hget(keys.request_state(request_id), "job_id")
    return {rid: job for rid, job in zip(request_ids, pipe.execute(), strict=True) if job}


def job_owners(client: redis.Redis, job_ids: Iterable[str]) -> dict[str, str | None]:
    """The connector uuid of each job (None for a job that does not exist), in one round trip."""
    ids = list(job_ids)
    pipe = client.pipeline(transaction=False)
    for job_id in ids:
        pipe.hget(keys.job(job_id), "connector_uuid")
    return dict(zip(ids, pipe.execute(), strict=True))


def queue_depths(client: redis.Redis, queues: Sequence[str]) -> dict[str, int]:
    """Tasks waiting in each broker queue, in one round trip."""
    pipe = client.pipeline(transaction=False)
    for queue in queues:
        pipe.llen(queue)
    return {queue: int(depth) for queue, depth in zip(queues, pipe.execute(), strict=True)}


JobCounts = tuple[str | None, str | None, str | None, str | None]  # accepted, processed, skipped, owner


def capacity_counts(client: redis.Redis, queue: str, job_ids: Iterable[str]) -> tuple[int, list[JobCounts]]:
    """The depth of ``queue`` and, per job in order, its accepted/processed/skipped counters and its
    connector: one round trip."""
    pipe = client.pipeline(transaction=False)
    pipe.llen(queue)
    for job_id in job_ids:
        pipe.hmget(keys.job(job_id), "accepted", "processed", "skipped", "connector_uuid")
    depth, *counts = pipe.execute()
    return int(depth), [tuple(c) for c in counts]


def unfinished_items(client: redis.Redis) -> int:
    """Pending items of every active job (one HLEN per active job)."""
    active = list(client.sscan_iter(keys.JOBS_ACTIVE, count=1000))
    if not active:
        return 0
    pipe = client.pipeline(transaction=False)
    for job_id in active:
        pipe.hlen(keys.job_pending(job_id))
    return int(sum(pipe.execute()))


def touch_accept(client: redis.Redis, job_id: str) -> None:
    """Note the job's last accept: a write on this connection after a publish, so that Redis
    ``WAIT`` covers the broker's writes too."""
    client.hset(keys.job(job_id), "last_accept_ts", time.time())
