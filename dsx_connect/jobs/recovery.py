"""Recovery of items the broker lost: send them again once the pipeline is idle.

Celery's Redis transport pops a task (``BRPOP``) before it records it as unacknowledged; a worker
killed in between (or with the answer still in its socket) loses the task, and with it the items of
its batch. ``acks_late`` and the visibility timeout cannot bring those back: Redis no longer has them.

So every accepted item is also kept in its job's pending hash (``keys.job_pending``: request id ->
scan task JSON) until its result is stored or it is skipped (one Lua call each, see
``jobs.lua.ACCEPT_LUA`` and the result store). A running job that made no progress for
``DSXCONNECT_JOBS__REDISPATCH_AFTER_S`` while the whole pipeline is idle (all four queues empty and
no task held unacknowledged by any worker) cannot be waiting for anything: its pending items are
lost, and this sends them again. Steps are idempotent per request id (results stored once, actions
claimed once), so a resend that races a late result costs work, never a double count.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable
from typing import Any

import redis

from dsx_connect import keys
from dsx_connect.queues import ALL_QUEUES

log = logging.getLogger(__name__)

#: kombu's Redis transport keeps tasks delivered but not acknowledged in this hash
UNACKED = "unacked"

Publish = Callable[[list[dict[str, Any]]], None]  # enqueues scan tasks (batched by the publisher)


def pipeline_idle(client: redis.Redis) -> bool:
    """No task queued on any of the four queues, and none held unacknowledged by a worker."""
    pipe = client.pipeline(transaction=False)
    for queue in ALL_QUEUES:
        pipe.llen(queue)
    pipe.hlen(UNACKED)
    return not any(pipe.execute())


def redispatch_lost_items(
    client: redis.Redis,
    running: list[tuple[str, float]],
    idle_after_s: float,
    publish: Publish,
    now: float | None = None,
) -> dict[str, int]:
    """Send again the pending items of each ``(job_id, last_progress_ts)`` idle for ``idle_after_s``.

    Returns the number of items sent again per job. Does nothing while the pipeline is busy.
    """
    now = time.time() if now is None else now
    idle_jobs = [(job_id, last) for job_id, last in running if now - last >= idle_after_s]
    if not idle_jobs or not pipeline_idle(client):
        return {}
    sent: dict[str, int] = {}
    for job_id, last in idle_jobs:
        pending = client.hgetall(keys.job_pending(job_id))
        if not pending:
            continue
        tasks = [json.loads(raw) for raw in pending.values()]
        publish(tasks)
        pipe = client.pipeline(transaction=False)
        # counts as progress: the job gets a full period before it is considered again
        pipe.hset(keys.job(job_id), mapping={"last_update_ts": now})
        pipe.hincrby(keys.job(job_id), "redispatched", len(tasks))
        pipe.execute()
        log.warning(
            "sent again %d items the pipeline lost (no progress for %.0f s, pipeline idle)",
            len(tasks), now - last, extra={"job_id": job_id},
        )  # fmt: skip
        sent[job_id] = len(tasks)
    return sent
