"""Stall detection: a running job that makes no progress for ``DSXCONNECT_JOBS__STALL_TIMEOUT_S`` fails.

Every API replica sweeps the active jobs periodically (:func:`watch_stalled_jobs`, started by the
app's lifespan), so it works when nobody reads the job. The decision is re-checked inside one Lua
call (:meth:`JobStore.fail` with ``idle_since``), so replicas sweeping together fail a job once and
never one that progressed in between.

A job is stalled when it is ``running`` and its last progress (an accepted batch, a result, a skip,
a control change) is older than the timeout, and either

* nothing of it is left in the pipeline (every accepted item has a result or was skipped): the
  connector stopped enumerating without reporting ``enqueue_done``; or
* items are outstanding and no other running job progressed within the timeout either: the
  pipeline itself is stuck (workers down, items lost). While other jobs progress, outstanding items
  are taken to be queued behind them, not lost.

Paused jobs never stall: they wait for the operator. Nor does a connector's monitor job with nothing
outstanding (``dsx_connect.state.monitor_jobs``): it waits for the next change event.

Before the jobs are judged, the sweep sends again the pending items of running and paused jobs whose
lease passed (:mod:`dsx_connect.jobs.recovery`), however busy the pipeline is.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass

import anyio
import redis

from dsx_connect.jobs.recovery import Publish, redispatch_expired_items
from dsx_connect.jobs.requeue import Send, redispatch_expired_requeues
from dsx_connect.settings import Settings
from dsx_connect.state.dead_letters import DeadLetterStore
from dsx_connect.state.jobs import JobStore

log = logging.getLogger(__name__)

_FIELDS = (
    "status",
    "last_update_ts",
    "created_ts",
    "accepted",
    "processed",
    "skipped",
    "enqueue_done",
    "kind",
)


@dataclass(frozen=True)
class _Seen:
    job_id: str
    last_progress: float
    outstanding: int
    enqueue_done: bool
    monitor: bool = False


def sweep_interval_s(stall_timeout_s: float) -> float:
    """How often a replica sweeps: a quarter of the timeout, between 1 s and 30 s."""
    return max(1.0, min(30.0, stall_timeout_s / 4))


def _num(value: str | None) -> float:
    try:
        return float(value or 0)
    except ValueError:
        return 0.0


def fail_stalled_jobs(
    jobs: JobStore,
    stall_timeout_s: float,
    now: float | None = None,
    *,
    redispatch_after_s: float | None = None,
    publish: Publish | None = None,
) -> list[str]:
    """One sweep over the active jobs; returns the ids it marked failed.

    With ``publish``, pending items whose lease (``redispatch_after_s``) passed are sent again first.
    """
    now = time.time() if now is None else now
    ids = jobs.active_ids()
    if not ids:
        return []
    running: list[_Seen] = []
    active: list[str] = []
    finished: list[str] = []
    failed_earlier: list[str] = []
    for job_id, values in zip(ids, jobs.fields_of(ids, _FIELDS), strict=True):
        fields = dict(zip(_FIELDS, values, strict=True))
        if fields["status"] == "failed":
            failed_earlier.append(job_id)
            continue
        if fields["status"] not in ("running", "paused"):
            finished.append(job_id)  # completed by the result script, expired, or never created
            continue
        active.append(job_id)
        if fields["status"] == "running":
            done = _num(fields["processed"]) + _num(fields["skipped"])
            running.append(
                _Seen(
                    job_id=job_id,
                    last_progress=_num(fields["last_update_ts"]) or _num(fields["created_ts"]),
                    outstanding=max(int(_num(fields["accepted"]) - done), 0),
                    enqueue_done=fields["enqueue_done"] == "1",
                    monitor=fields["kind"] == "monitor",
                )
            )
    if failed_earlier:
        # a failed job's accepted items are still scanned: swept until each has an outcome
        for job_id, pending in zip(failed_earlier, jobs.pending_counts(failed_earlier), strict=True):
            (active if pending else finished).append(job_id)
    if finished:
        jobs.forget_finished(finished)
    if publish is not None and redispatch_after_s is not None:
        redispatch_expired_items(jobs, active, redispatch_after_s, publish, now)
    cutoff = now - stall_timeout_s
    pipeline_alive = any(seen.last_progress > cutoff for seen in running)
    failed = []
    for seen in running:
        if seen.last_progress > cutoff or (seen.outstanding and pipeline_alive):
            continue
        if seen.monitor and not seen.outstanding and not seen.enqueue_done:
            continue  # a monitor job waiting for the next change event is idle, not stalled
        idle = int(now - seen.last_progress)
        if seen.outstanding:
            reason = f"stalled: no progress for {idle} s with {seen.outstanding} items not scanned"
        elif not seen.enqueue_done:
            reason = f"stalled: no progress for {idle} s; the connector never reported the end of enumeration"
        else:
            reason = f"stalled: no progress for {idle} s"
        if jobs.fail(seen.job_id, reason, idle_since=cutoff):
            log.warning("job marked failed: %s", reason, extra={"job_id": seen.job_id})
            failed.append(seen.job_id)
    return failed


@asynccontextmanager
async def watch_stalled_jobs(
    settings: Settings, client: redis.Redis, publish: Publish | None = None, send: Send | None = None
) -> AsyncIterator[None]:
    """Sweep for stalled jobs in the background while the block runs (one sweeper per API process).

    ``publish`` (scan task dicts onto ``scan_request_queue``, batched as configured) enables the
    recovery of lost items; ``send`` (payloads to a stage) that of requeued dead letters whose
    attempt never finished (``jobs.requeue``).
    """
    jobs = JobStore(client, settings.jobs.retain_s)
    timeout = settings.jobs.stall_timeout_s
    redispatch_after = settings.jobs.redispatch_after_s
    interval = min(sweep_interval_s(timeout), max(1.0, redispatch_after / 4))

    letters = DeadLetterStore(client, settings.dlq.retain_s)

    def sweep() -> list[str]:
        if send is not None:
            redispatch_expired_requeues(letters, redispatch_after, send)
        return fail_stalled_jobs(jobs, timeout, redispatch_after_s=redispatch_after, publish=publish)

    async def loop() -> None:
        while True:
            await anyio.sleep(interval)
            try:
                await anyio.to_thread.run_sync(sweep)
            except redis.RedisError as exc:
                log.warning("stall sweep skipped: %s", exc)
            except Exception:
                log.exception("stall sweep failed")

    task = asyncio.create_task(loop(), name="stalled-jobs-sweep")
    try:
        yield
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
