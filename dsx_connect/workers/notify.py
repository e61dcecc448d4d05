"""Notification step: publish each new result, and a summary of each job it touched (Redis pub/sub)."""

from __future__ import annotations

from dsx_connect.notifications.fanout import fanout_for
from dsx_connect.oplog import log_job_complete_once, log_scan_results_notified
from dsx_connect.state.events import publish_job, publish_results
from dsx_connect.state.jobs import job_view
from dsx_connect.workers.context import WorkerContext


def run_notify_batch(ctx: WorkerContext, request_ids: list[str], job_ids: list[str]) -> int:
    """Publish the stored events of ``request_ids`` as they are stored (no re-encoding)."""
    events = [event for event in ctx.results.get_many(request_ids) if event is not None]
    # (None: dropped by retention in between, nothing to show)
    published = publish_results(ctx.client, events)
    if ctx.settings.notifications.webhooks:
        fanout_for(ctx.client, ctx.settings.notifications).publish(events)  # each webhook's buffer
    for job_id in job_ids:
        data = ctx.jobs.raw(job_id)
        if data:
            view = job_view(data)
            publish_job(ctx.client, job_id, view)
            log_scan_results_notified(view)  # the 1.x operators' lines
            log_job_complete_once(ctx.jobs, view)
    return published
