"""Reports: one job's (verdicts, malicious files, duration, throughput, errors), and jobs compared."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, HTTPException, Path, Query
from fastapi.responses import StreamingResponse

from dsx_connect.api.deps import HistoryDep, JobsDep, ReaderDep
from dsx_connect.api.results import history_available
from dsx_connect.results.exports import MEDIA_TYPES
from dsx_connect.results.models import JobComparison, JobReport
from dsx_connect.results.reports import UnknownJob, compare_jobs, comparison_csv, job_report, report_csv

router = APIRouter(prefix="/scan/reports", tags=["reports"])

_CSV: dict[int | str, dict[str, Any]] = {
    200: {"content": {MEDIA_TYPES["csv"]: {}}, "description": "the report (CSV when format=csv)"}
}


def _csv(lines: object, name: str) -> StreamingResponse:
    return StreamingResponse(
        lines,  # type: ignore[arg-type]
        media_type=MEDIA_TYPES["csv"],
        headers={"Content-Disposition": f'attachment; filename="{name}"'},
    )


@router.get(
    "/jobs/{job_id}", response_model=JobReport, responses={**_CSV, 404: {"description": "unknown job"}}
)
def get_job_report(
    job_id: Annotated[str, Path(max_length=128)],
    jobs: JobsDep,
    reader: ReaderDep,
    history: HistoryDep,
    format: Literal["json", "csv"] = "json",
) -> JobReport | StreamingResponse:
    """A job's report: verdict totals, malicious files with threat names and actions, duration,
    throughput and errors (``format=csv`` for a spreadsheet)."""
    if "\x00" in job_id:
        raise HTTPException(422, "job_id must not contain a NUL character")
    try:
        with history_available():
            report = job_report(job_id, jobs, reader, history)
    except UnknownJob:
        raise HTTPException(
            404, f"job {job_id} not found (neither its record nor any result of it)"
        ) from None
    if format == "csv":
        return _csv(report_csv(report), f"job-{job_id[:40]}-report.csv")
    return report


@router.get("/compare", response_model=JobComparison, responses={**_CSV, 404: {"description": "unknown job"}})
def compare(
    jobs: JobsDep,
    history: HistoryDep,
    job: Annotated[list[str], Query(min_length=2, max_length=20, description="two or more job ids (repeat)")],
    format: Literal["json", "csv"] = "json",
) -> JobComparison | StreamingResponse:
    """Two or more jobs side by side: duration, results, verdicts, errors, throughput."""
    if any(len(j) > 128 or "\x00" in j for j in job):
        raise HTTPException(422, "a job id is at most 128 characters, without NUL")
    try:
        with history_available():
            comparison = compare_jobs(list(dict.fromkeys(job)), jobs, history)
    except UnknownJob as exc:
        raise HTTPException(404, f"job {exc} not found") from None
    if format == "csv":
        return _csv(comparison_csv(comparison), "jobs-compared.csv")
    return comparison
