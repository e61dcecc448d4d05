"""Scan results: search (filters, keyset pages), one result, exports, and the stats counters."""

from __future__ import annotations

import itertools
import logging
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from typing import Annotated, Literal

from fastapi import APIRouter, Depends, HTTPException, Path, Query
from fastapi.responses import StreamingResponse
from pydantic import ValidationError
from sqlalchemy.exc import SQLAlchemyError

from dsx_connect.api.deps import ReaderDep, ResultsDep, SettingsDep
from dsx_connect.results.exports import MEDIA_TYPES, ExportFormat, export_lines
from dsx_connect.results.models import ResultsPage, StatsView
from dsx_connect.results.search import Cursor, ResultFilters
from shared.models import ScanResultEvent, Verdict, utcnow_iso

router = APIRouter(prefix="/scan", tags=["results"])
log = logging.getLogger(__name__)

_UNAVAILABLE: dict[int | str, dict[str, str]] = {503: {"description": "the results history is unavailable"}}


@contextmanager
def history_available() -> Iterator[None]:
    """A database that is down or not migrated answers 503 with what to do, not a bare 500."""
    try:
        yield
    except SQLAlchemyError as exc:
        log.warning("results history unavailable: %s: %s", type(exc).__name__, exc)
        raise HTTPException(
            503,
            f"the results history is unavailable ({type(exc).__name__}): try again; if its schema is missing,"
            " run `inv db-upgrade` (or start the API with DSXCONNECT_RESULTS_DB__MIGRATE_ON_START=true)",
        ) from None


def result_filters(
    verdict: Verdict | None = None,
    connector: Annotated[str | None, Query(max_length=64, description="connector uuid")] = None,
    job: Annotated[str | None, Query(max_length=128, description="job id")] = None,
    job_id: Annotated[str | None, Query(max_length=128, description="1.x name of `job`")] = None,
    since: Annotated[datetime | None, Query(description="RFC 3339; results stored at or after it")] = None,
    until: Annotated[datetime | None, Query(description="RFC 3339; results stored before it")] = None,
    sha256: Annotated[str | None, Query(min_length=64, max_length=64, pattern="^[0-9a-fA-F]{64}$")] = None,
    location_prefix: Annotated[
        str | None, Query(max_length=4096, description="locations starting with it")
    ] = None,
    threat: Annotated[str | None, Query(max_length=256, description="threat name, exactly")] = None,
) -> ResultFilters:
    """The filters of a results search, shared by the list and the exports."""
    if job and job_id and job != job_id:
        raise HTTPException(422, "job and job_id (its 1.x name) disagree: give one")
    try:
        filters = ResultFilters(
            verdict=verdict.value if verdict else None,
            connector=connector or None,
            job=job or job_id or None,
            since=since,
            until=until,
            sha256=sha256,
            location_prefix=location_prefix or None,
            threat=threat or None,
        )
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors())
        raise HTTPException(422, problems) from None
    # compared once both are UTC (the filters read a time without a zone as UTC): one with a zone and
    # one without could not be compared
    if filters.since and filters.until and filters.until <= filters.since:
        raise HTTPException(422, "until must be later than since")
    return filters


Filters = Annotated[ResultFilters, Depends(result_filters)]


def _cursor(cursor: str | None) -> Cursor | None:
    try:
        return Cursor.decode(cursor) if cursor else None
    except ValueError as exc:
        raise HTTPException(422, str(exc)) from None


@router.get("/results", response_model=ResultsPage | list[ScanResultEvent], responses=_UNAVAILABLE)
def list_results(
    reader: ReaderDep,
    settings: SettingsDep,
    filters: Filters,
    job_id: Annotated[str | None, Query(include_in_schema=False)] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 50,
    cursor: Annotated[
        str | None, Query(max_length=48, description="`next_cursor` of the previous page")
    ] = None,
    offset: Annotated[int, Query(ge=0, le=100_000, description="1.x paging; prefer `cursor`")] = 0,
    shape: Annotated[
        Literal["page", "list"] | None,
        Query(description="`list`: a plain JSON list (the 1.x answer, the default when `job_id` is used)"),
    ] = None,
) -> ResultsPage | list[ScanResultEvent]:
    """Results newest first, filtered (verdict, connector, job, time range, SHA-256, location prefix,
    threat name), a page at a time; follow ``next_cursor`` for the next page."""
    with history_available():
        page = reader.search(filters, _cursor(cursor), limit, offset if cursor is None else 0)
    items = [ScanResultEvent.model_validate(item) for item in page.items]
    if shape == "list" or (shape is None and job_id is not None):
        return items
    return ResultsPage(
        items=items,
        count=len(items),
        total=reader.cheap_total(filters),
        limit=limit,
        offset=offset,
        next_cursor=page.next_cursor,
        backend=settings.results_db.backend.value,
    )


@router.get(
    "/results/export",
    response_class=StreamingResponse,
    responses={
        200: {"content": {MEDIA_TYPES["csv"]: {}, MEDIA_TYPES["jsonl"]: {}}, "description": "the results"}
    },
)
def export_results(
    reader: ReaderDep, filters: Filters, format: Annotated[ExportFormat, Query()] = "csv"
) -> StreamingResponse:
    """Every result of a search as CSV or JSON Lines, streamed (newest first)."""
    name = f"dsx-connect-results-{utcnow_iso()[:19].replace(':', '')}.{format}"
    events = reader.iter_events(filters)
    with history_available():  # the first page decides the status; later pages stream
        first = list(itertools.islice(events, 1))
    return StreamingResponse(
        export_lines(itertools.chain(first, events), format),
        media_type=MEDIA_TYPES[format],
        headers={"Content-Disposition": f'attachment; filename="{name}"'},
    )


@router.get("/results/{request_id}", responses={404: {"description": "no result for this id"}})
def get_result(
    request_id: Annotated[str, Path(max_length=128, pattern=r"^[^\x00]*$")],
    results: ResultsDep,
    reader: ReaderDep,
) -> ScanResultEvent:
    """One result by its scan request id."""
    with history_available():
        result = results.get(request_id) or reader.get(request_id)
    if result is None:
        raise HTTPException(404, f"no result for scan request {request_id}")
    return ScanResultEvent.model_validate(result)


@router.get("/stats")
def get_stats(results: ResultsDep) -> StatsView:
    """Verdict totals, errors, bytes scanned and actions applied."""
    return StatsView.model_validate(results.stats())
