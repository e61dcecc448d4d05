"""Scan results and statistics."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any

from fastapi import APIRouter, HTTPException, Query

from dsx_connect.api.deps import ResultsDep
from shared.models import Verdict

router = APIRouter(prefix="/scan", tags=["results"])


@router.get("/results")
def list_results(
    results: ResultsDep,
    verdict: Verdict | None = None,
    connector: Annotated[str | None, Query(max_length=64, description="connector uuid")] = None,
    job: Annotated[str | None, Query(max_length=128, description="job id")] = None,
    since: Annotated[datetime | None, Query(description="RFC 3339 time; only newer results")] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 50,
    offset: Annotated[int, Query(ge=0, le=1_000_000)] = 0,
) -> dict[str, Any]:
    """Results newest first, filtered by verdict, connector, job and time, a page at a time."""
    if since is not None and since.tzinfo is None:
        since = since.replace(tzinfo=UTC)
    items, total = results.query(
        verdict=verdict.value if verdict else None,
        connector=connector,
        job=job,
        since=since,
        offset=offset,
        limit=limit,
    )
    return {"items": items, "count": len(items), "total": total, "limit": limit, "offset": offset}


@router.get("/results/{request_id}", responses={404: {"description": "no result for this id"}})
def get_result(request_id: str, results: ResultsDep) -> dict[str, Any]:
    """One result by its scan request id."""
    result = results.get(request_id)
    if result is None:
        raise HTTPException(404, f"no result for scan request {request_id}")
    return result


@router.get("/stats")
def get_stats(results: ResultsDep) -> dict[str, Any]:
    """Verdict totals, errors, bytes scanned and actions applied."""
    return results.stats()
