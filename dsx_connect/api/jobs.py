"""Full-scan jobs: state and control (SPEC §6)."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, HTTPException, Path, Query
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field

from dsx_connect.api.deps import JobsDep
from dsx_connect.jobs.store import InvalidTransition, JobNotFound

router = APIRouter(prefix="/scan/jobs", tags=["jobs"])

JobId = Annotated[str, Path(max_length=128)]


class EnqueueDone(BaseModel):
    """End of enumeration. ``status: failed`` (with ``error``) when the connector could not finish it:
    the items already submitted are still scanned, and the job is marked failed with the reason."""

    enqueued_total: int = Field(ge=0)
    status: Literal["done", "failed"] = "done"
    error: str | None = Field(default=None, max_length=2000)


def _job_or_404(jobs: JobsDep, job_id: JobId) -> dict[str, Any]:
    job = jobs.get(job_id)
    if job is None:
        raise HTTPException(404, f"job {job_id} not found")
    return job


@router.get("")
def list_jobs(
    jobs: JobsDep, limit: Annotated[int, Query(ge=1, le=500)] = 50, offset: Annotated[int, Query(ge=0)] = 0
) -> dict[str, Any]:
    """Jobs, newest first."""
    items, total = jobs.list(offset, limit)
    return {"items": items, "total": total, "limit": limit, "offset": offset}


@router.get("/{job_id}", responses={404: {"description": "unknown job"}})
def get_job(job: Annotated[dict[str, Any], Depends(_job_or_404)]) -> dict[str, Any]:
    """A job's status, counters, throughput and ETA."""
    return job


@router.get("/{job_id}/raw", responses={404: {"description": "unknown job"}})
def get_job_raw(job_id: JobId, jobs: JobsDep) -> dict[str, Any]:
    """The stored state of a job; connectors read ``data.paused`` / ``data.cancel`` here."""
    raw = jobs.raw(job_id)
    if raw is None:
        raise HTTPException(404, f"job {job_id} not found")
    return {"job_id": job_id, "data": raw}


@router.post("/{job_id}/enqueue_done", responses={404: {"description": "unknown job"}})
def enqueue_done(job_id: JobId, body: EnqueueDone, jobs: JobsDep) -> dict[str, Any]:
    """The connector finished enumerating: record how many items it submitted."""
    try:
        jobs.enqueue_done(job_id, body.enqueued_total)
    except JobNotFound:
        raise HTTPException(404, f"job {job_id} not found") from None
    if body.status == "failed":
        jobs.fail(job_id, f"enumeration failed: {body.error or 'no reason given'}")
    return {"status": "success", "message": "enumeration recorded", "job": jobs.get(job_id)}


def _control(action: str, job_id: str, jobs: JobsDep) -> JSONResponse:
    try:
        previous = jobs.transition(job_id, action)
    except JobNotFound:
        raise HTTPException(404, f"job {job_id} not found") from None
    except InvalidTransition as exc:
        return JSONResponse(
            {"status": "error", "message": str(exc), "job_status": exc.status}, status_code=409
        )
    return JSONResponse(
        {
            "status": "success",
            "message": f"job {action}d",
            "previous_status": previous,
            "job": jobs.get(job_id),
        }
    )


@router.post("/{job_id}/pause", responses={409: {"description": "not running"}})
def pause_job(job_id: JobId, jobs: JobsDep) -> JSONResponse:
    """Hold the job's remaining items; none are dropped."""
    return _control("pause", job_id, jobs)


@router.post("/{job_id}/resume", responses={409: {"description": "not paused"}})
def resume_job(job_id: JobId, jobs: JobsDep) -> JSONResponse:
    """Continue a paused job."""
    return _control("resume", job_id, jobs)


@router.post("/{job_id}/cancel", responses={409: {"description": "already finished"}})
def cancel_job(job_id: JobId, jobs: JobsDep) -> JSONResponse:
    """Discard what is not yet scanned."""
    return _control("cancel", job_id, jobs)
