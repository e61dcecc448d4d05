"""Full-scan jobs: state and control (SPEC §6).

Control is a small state machine; anything else answers 409 with the job's current status::

    running --pause--> paused --resume--> running
    running | paused --cancel--> cancelled
    running | paused --(all processed)--> completed
    running | paused --(enumeration failed, stalled)--> failed
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, HTTPException, Path, Query
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field

from dsx_connect import keys
from dsx_connect.api.deps import JobsDep
from dsx_connect.auth.access import OperatorOnly, OwnsJob, Public
from dsx_connect.intake import JOB_ID_PATTERN
from dsx_connect.oplog import log_job_complete_once
from dsx_connect.results.models import JobAnswer, JobRaw, JobsPage, JobView
from dsx_connect.state.jobs import InvalidTransition, JobNotFound
from dsx_connect.state.monitor_jobs import ID_PREFIX as MONITOR_ID_PREFIX
from dsx_connect.state.monitor_jobs import KIND as MONITOR
from shared.models import MAX_REPORTED_SIZE

router = APIRouter(prefix="/scan/jobs", tags=["jobs"])

JobId = Annotated[str, Path(max_length=128, pattern=JOB_ID_PATTERN.pattern)]  # no ":": ids are key parts
JobStatus = Literal["running", "paused", "cancelled", "completed", "failed"]
_CONFLICT: dict[int | str, dict[str, Any]] = {
    404: {"description": "unknown job"},
    409: {"description": "not allowed in the job's status"},
}


class JobFlags(BaseModel):
    """A job's control flags as connectors read them (``"1"`` when set); ``status`` for the job's own
    connector (signed)."""

    paused: str | None = None
    cancel: str | None = None
    status: str | None = None


class JobFlagsView(BaseModel):
    """What ``GET /scan/jobs/{id}/raw`` shows a caller without an operator credential (SPEC §8)."""

    job_id: str
    data: JobFlags


class EnqueueDone(BaseModel):
    """End of enumeration. ``status: failed`` (with ``error``) when the connector could not finish it:
    the items already submitted are still scanned, and the job is marked failed with the reason.
    ``enqueued_total`` is at most ``MAX_REPORTED_SIZE`` (2**53 - 1): the job's ETA divides by it."""

    enqueued_total: int = Field(ge=0, le=MAX_REPORTED_SIZE)
    status: Literal["done", "failed"] = "done"
    error: str | None = Field(default=None, max_length=2000)


def _job_or_404(jobs: JobsDep, job_id: JobId) -> dict[str, Any]:
    job = jobs.get(job_id)
    if job is None:
        raise HTTPException(404, f"job {job_id} not found")
    return job


@router.get("")
def list_jobs(
    jobs: JobsDep,
    _: OperatorOnly,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
    offset: Annotated[int, Query(ge=0, le=1_000_000)] = 0,  # Redis takes 64-bit offsets only
    status: Annotated[list[JobStatus] | None, Query(description="only these statuses (repeatable)")] = None,
    kind: Annotated[str | None, Query(max_length=32, description="full_scan or single")] = None,
) -> JobsPage:
    """Jobs, newest first; ``total`` is null when a filter could not count every job cheaply."""
    items, total = jobs.list(offset, limit, statuses=status, kind=kind)
    return JobsPage.model_validate({"items": items, "total": total, "limit": limit, "offset": offset})


@router.get("/{job_id}", responses={404: {"description": "unknown job"}})
def get_job(_: OperatorOnly, job: Annotated[dict[str, Any], Depends(_job_or_404)]) -> JobView:
    """A job's status, counters, throughput and ETA."""
    return JobView.model_validate(job)


@router.get(
    "/{job_id}/raw",
    response_model=JobRaw | JobFlagsView,
    response_model_exclude_none=True,
    responses={404: {"description": "unknown job"}},
)
def get_job_raw(job_id: JobId, jobs: JobsDep, who: Public) -> Any:
    """The stored state of a job (operators); connectors read ``data.paused`` / ``data.cancel`` here,
    unsigned (SPEC §8), and see only those flags (and ``status``, when they sign, of their own jobs:
    another connector's job's status is not theirs to read).

    As in 1.x, an operator's answer names the record's ``key`` and its ``ttl``: the seconds before the
    job is forgotten (``DSXCONNECT_JOBS__RETAIN_S`` after its creation or its last accepted item). A
    record found without an expiry (re-created by a late update) gets that retention here, so no job
    is kept forever.
    """
    raw = jobs.raw(job_id)
    if raw is None:
        raise HTTPException(404, f"job {job_id} not found")
    key = keys.job(job_id)
    ttl = jobs.ttl_or_retain(job_id)
    if who.is_operator:
        return JobRaw(job_id=job_id, key=key, ttl=ttl, data=raw)
    flags = JobFlags(paused=raw.get("paused"), cancel=raw.get("cancel"))
    if who.is_connector and who.uuid is not None and who.uuid == raw.get("connector_uuid"):
        flags.status = raw.get("status")
    return JobFlagsView(job_id=job_id, data=flags)


@router.post(
    "/{job_id}/enqueue_done",
    responses={
        400: {"description": "a monitor job (it never ends enumerating)"},
        404: {"description": "unknown job"},
    },
)
def enqueue_done(job_id: JobId, body: EnqueueDone, jobs: JobsDep, _: OwnsJob) -> JobAnswer:
    """The connector finished enumerating (or failed to): record how many items it submitted.

    Not for a monitor job (400): its id is in the answer to each change event, but only the core
    ends it (it rolls over, ``dsx_connect.state.monitor_jobs``); a connector ending it early would
    complete or fail the job its later change events still join."""
    if job_id.startswith(MONITOR_ID_PREFIX) or jobs.fields_of([job_id], ["kind"])[0][0] == MONITOR:
        raise HTTPException(
            400, f"job {job_id} is a monitor job: it has no enumeration to end (the core rolls it over)"
        )
    failure = f"enumeration failed: {body.error or 'no reason given'}" if body.status == "failed" else None
    try:
        jobs.enqueue_done(job_id, body.enqueued_total, failure=failure)
    except JobNotFound:
        raise HTTPException(404, f"job {job_id} not found") from None
    job = jobs.get(job_id)
    if job is not None:
        log_job_complete_once(jobs, job)  # every item was scanned before enumeration ended
    return JobAnswer.model_validate({"status": "success", "message": "enumeration recorded", "job": job})


def _control(action: str, job_id: str, jobs: JobsDep) -> JobAnswer | JSONResponse:
    try:
        previous = jobs.transition(job_id, action)
    except JobNotFound:
        raise HTTPException(404, f"job {job_id} not found") from None
    except InvalidTransition as exc:
        conflict = {"status": "error", "message": str(exc), "job_status": exc.status, "job": jobs.get(job_id)}
        return JSONResponse(conflict, status_code=409)
    job = jobs.get(job_id) or {}
    past = {"pause": "paused", "resume": "resumed", "cancel": "cancelled"}[action]
    body: dict[str, Any] = {
        "status": "success",
        "message": f"job {past}",
        "previous_status": previous,
        "job": job,
    }
    if action == "cancel":
        # Items still queued are only counted as skipped when a worker reaches them: say so.
        body |= {"processed": job.get("processed"), "skipped": job.get("skipped")}
        body["not_yet_scanned"] = job.get("not_yet_scanned")
        body["message"] = (
            f"job cancelled: {job.get('processed', 0)} items scanned, {job.get('skipped', 0)} skipped so far; "
            f"{job.get('not_yet_scanned', 0)} not yet scanned will be skipped as workers reach them"
        )
    return JobAnswer.model_validate(body)


@router.post(
    "/{job_id}/pause", responses=_CONFLICT, response_model=JobAnswer, response_model_exclude_none=True
)
def pause_job(job_id: JobId, jobs: JobsDep, _: OperatorOnly) -> JobAnswer | JSONResponse:
    """Hold the job's remaining items (none are dropped); only a running job can pause."""
    return _control("pause", job_id, jobs)


@router.post(
    "/{job_id}/resume", responses=_CONFLICT, response_model=JobAnswer, response_model_exclude_none=True
)
def resume_job(job_id: JobId, jobs: JobsDep, _: OperatorOnly) -> JobAnswer | JSONResponse:
    """Continue a paused job."""
    return _control("resume", job_id, jobs)


@router.post(
    "/{job_id}/cancel", responses=_CONFLICT, response_model=JobAnswer, response_model_exclude_none=True
)
def cancel_job(job_id: JobId, jobs: JobsDep, _: OperatorOnly) -> JobAnswer | JSONResponse:
    """Discard what is not yet scanned; the answer says how many were skipped and how many will be."""
    return _control("cancel", job_id, jobs)
