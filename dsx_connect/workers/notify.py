"""Notification step: publish each new result, and a summary of each job it touched (Redis pub/sub)."""

from __future__ import annotations

import json
from typing import Any

from dsx_connect import keys
from dsx_connect.jobs.store import job_view
from dsx_connect.workers.context import WorkerContext


def run_notify_batch(ctx: WorkerContext, events: list[dict[str, Any]]) -> None:
    redis = ctx.jobs.redis
    pipe = redis.pipeline(transaction=False)
    for event in events:
        pipe.publish(keys.CHANNEL_SCAN_RESULT, json.dumps(event))
    pipe.execute()
    for job_id in {event["job_id"] for event in events}:
        data = ctx.jobs.raw(job_id)
        if data:
            redis.publish(keys.channel_job(job_id), json.dumps(job_view(data)))
