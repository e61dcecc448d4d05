"""Notification step: publish each new result, and a summary of each job it touched (Redis pub/sub)."""

from __future__ import annotations

import json

from dsx_connect import keys
from dsx_connect.notifications.fanout import fanout_for
from dsx_connect.oplog import log_job_complete_once, log_scan_results_notified
from dsx_connect.state.jobs import job_view
from dsx_connect.workers.context import WorkerContext


def run_notify_batch(ctx: WorkerContext, request_ids: list[str], job_ids: list[str]) -> int:
    """Publish the stored events of ``request_ids`` as they are stored (no re-encoding)."""
    redis = ctx.jobs.redis
    pipe = redis.pipeline(transaction=False)
    published = 0
    events = [event for event in ctx.results.get_many(request_ids) if event is not None]
    for event in events:  # (None: dropped by retention in between, nothing to show)
        pipe.publish(keys.CHANNEL_SCAN_RESULT, event)
        published += 1
    pipe.execute()
    if ctx.settings.notifications.webhooks:
        fanout_for(redis, ctx.settings.notifications).publish(events)  # each webhook's buffer
    for job_id in job_ids:
        data = ctx.jobs.raw(job_id)
        if data:
            view = job_view(data)
            redis.publish(keys.channel_job(job_id), json.dumps(view))
            log_scan_results_notified(view)  # the 1.x operators' lines
            log_job_complete_once(redis, view)
    return published
