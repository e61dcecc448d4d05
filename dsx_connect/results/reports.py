"""Per-job reports and job comparisons, from the job record (Redis) and the stored results.

A job's counters come from its record while Redis keeps it (``DSXCONNECT_JOBS__RETAIN_S``); past
that, from the SQL history (its time span standing for the duration).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from datetime import UTC, datetime
from itertools import islice
from typing import Any

from dsx_connect.results.exports import csv_lines
from dsx_connect.results.history import SqlHistory
from dsx_connect.results.models import FailedFile, JobComparison, JobComparisonRow, JobReport, MaliciousFile
from dsx_connect.results.rows import threat_name
from dsx_connect.results.search import ResultFilters
from dsx_connect.state.jobs import JobStore

LISTED = 1000  # malicious files and failures listed in a report (the export has them all)


class UnknownJob(LookupError):
    pass


def _iso(us: int | None) -> str | None:
    if us is None:
        return None
    return datetime.fromtimestamp(us / 1_000_000, tz=UTC).isoformat().replace("+00:00", "Z")


def _seconds(start: str | None, end: str | None) -> float | None:
    if not start or not end:
        return None
    parse = lambda text: datetime.fromisoformat(text.replace("Z", "+00:00"))  # noqa: E731
    return max((parse(end) - parse(start)).total_seconds(), 0.0)


def _summary(job_id: str, jobs: JobStore, history: SqlHistory | None) -> dict[str, Any]:
    job = jobs.get(job_id)
    if job is not None:
        finished = job.get("finished")
        duration = _seconds(job.get("started"), finished or job.get("last_update"))
        return {
            "job_id": job_id,
            "connector_uuid": job.get("connector_uuid"),
            "connector_name": job.get("connector_name"),
            "status": job.get("status"),
            "started": job.get("started"),
            "finished": finished,
            "duration_s": duration,
            "results": int(job.get("processed") or 0),
            "verdicts": dict(job.get("verdicts") or {}),
            "actions": dict(job.get("actions") or {}),
            "errors": int(job.get("errors") or 0),
            "bytes_scanned": int(job.get("bytes_scanned") or 0),
            "source": "job",
        }
    if history is None:
        raise UnknownJob(job_id)
    totals = history.job_totals(job_id)
    if totals.results == 0:
        raise UnknownJob(job_id)
    newest = history.search(ResultFilters(job=job_id), None, 1).items
    if not newest:  # retention took the job's last rows in between
        raise UnknownJob(job_id)
    first = newest[0]
    return {
        "job_id": job_id,
        "connector_uuid": (first.get("connector") or {}).get("uuid"),
        "connector_name": (first.get("connector") or {}).get("name"),
        "status": None,
        "started": _iso(totals.first_us),
        "finished": _iso(totals.last_us),
        "duration_s": ((totals.last_us or 0) - (totals.first_us or 0)) / 1_000_000,
        "results": totals.results,
        "verdicts": totals.verdicts,
        "actions": totals.actions,
        "errors": totals.errors,
        "bytes_scanned": totals.bytes_scanned,
        "source": "history",
    }


def _rates(summary: dict[str, Any]) -> tuple[float | None, float | None]:
    duration = summary["duration_s"]
    if not duration:
        return None, None
    return round(summary["results"] / duration, 2), round(summary["bytes_scanned"] / duration, 1)


def job_report(job_id: str, jobs: JobStore, reader: Any, history: SqlHistory | None) -> JobReport:
    """The report of one job; raises :class:`UnknownJob`."""
    summary = _summary(job_id, jobs, history)
    files_per_s, bytes_per_s = _rates(summary)
    malicious = [
        _malicious(e)
        for e in islice(reader.iter_events(ResultFilters(job=job_id, verdict="Malicious")), LISTED + 1)
    ]
    failed = (
        e for e in reader.iter_events(ResultFilters(job=job_id, verdict="Not Scanned")) if e.get("error")
    )
    failures = [_failure(e) for e in islice(failed, LISTED + 1)]
    return JobReport(
        **summary,
        files_per_s=files_per_s,
        bytes_per_s=bytes_per_s,
        malicious=malicious[:LISTED],
        malicious_truncated=len(malicious) > LISTED,
        failures=failures[:LISTED],
        failures_truncated=len(failures) > LISTED,
    )


def _malicious(event: dict[str, Any]) -> MaliciousFile:
    action = event.get("action") or {}
    return MaliciousFile(
        scan_request_id=event["scan_request_id"],
        timestamp=event.get("timestamp", ""),
        location=event.get("location", ""),
        sha256=(event.get("file_info") or {}).get("sha256", ""),
        threat_name=threat_name(event),
        threat_type=(event.get("verdict_details") or {}).get("threat_type"),
        action=action.get("requested", ""),
        action_applied=bool(action.get("applied")),
        action_status=action.get("status", ""),
    )


def _failure(event: dict[str, Any]) -> FailedFile:
    error = event.get("error") or {}
    return FailedFile(
        scan_request_id=event["scan_request_id"],
        timestamp=event.get("timestamp", ""),
        location=event.get("location", ""),
        error=error.get("message", "") if isinstance(error, dict) else str(error),
    )


def report_csv(report: JobReport) -> Iterator[str]:
    """The report as CSV: the summary as ``field,value`` rows, then the malicious files and failures."""
    flat: list[tuple[str, Any]] = [
        (name, getattr(report, name))
        for name in (
            "job_id",
            "connector_name",
            "connector_uuid",
            "status",
            "started",
            "finished",
            "duration_s",
        )
    ]
    flat += [("results", report.results), ("errors", report.errors), ("bytes_scanned", report.bytes_scanned)]
    flat += [("files_per_s", report.files_per_s), ("bytes_per_s", report.bytes_per_s)]
    flat += [(f"verdict:{k}", v) for k, v in sorted(report.verdicts.items())]
    flat += [(f"action:{k}", v) for k, v in sorted(report.actions.items())]
    yield from csv_lines(("field", "value"), ((k, "" if v is None else v) for k, v in flat))
    yield "\r\n"
    columns = (
        "section",
        "scan_request_id",
        "timestamp",
        "location",
        "sha256",
        "threat_name",
        "threat_type",
        "action",
        "action_status",
        "error",
    )
    rows = [
        (
            "malicious",
            m.scan_request_id,
            m.timestamp,
            m.location,
            m.sha256,
            m.threat_name or "",
            m.threat_type or "",
            m.action if m.action_applied else "",
            m.action_status,
            "",
        )
        for m in report.malicious
    ] + [
        ("failed", f.scan_request_id, f.timestamp, f.location, "", "", "", "", "", f.error)
        for f in report.failures
    ]
    yield from csv_lines(columns, rows)


def compare_jobs(job_ids: Sequence[str], jobs: JobStore, history: SqlHistory | None) -> JobComparison:
    """Jobs side by side; raises :class:`UnknownJob` for the first one not found."""
    rows = []
    for job_id in job_ids:
        summary = _summary(job_id, jobs, history)
        files_per_s, _ = _rates(summary)
        rows.append(
            JobComparisonRow(
                **{k: v for k, v in summary.items() if k in JobComparisonRow.model_fields},
                files_per_s=files_per_s,
            )
        )
    verdicts = sorted({v for row in rows for v in row.verdicts})
    return JobComparison(jobs=rows, verdicts=verdicts)


def comparison_csv(comparison: JobComparison) -> Iterator[str]:
    """One row per job; a column per verdict."""
    header = ["job_id", "connector_name", "status", "started", "finished", "duration_s", "results"]
    header += [*comparison.verdicts, "errors", "bytes_scanned", "files_per_s"]
    rows = (
        [
            r.job_id,
            r.connector_name or "",
            r.status or "",
            r.started or "",
            r.finished or "",
            r.duration_s,
            r.results,
        ]
        + [r.verdicts.get(v, 0) for v in comparison.verdicts]
        + [r.errors, r.bytes_scanned, r.files_per_s]
        for r in comparison.jobs
    )
    yield from csv_lines(header, rows)
