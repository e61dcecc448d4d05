"""Results as CSV or JSON Lines, streamed: one page in memory at a time, whatever the search size."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterable, Iterator
from typing import Any, Literal

from dsx_connect.results.rows import threat_name

ExportFormat = Literal["csv", "jsonl"]

CSV_COLUMNS = (
    "timestamp",
    "scan_request_id",
    "job_id",
    "connector_name",
    "connector_uuid",
    "location",
    "metainfo",
    "verdict",
    "threat_name",
    "threat_type",
    "sha256",
    "size_in_bytes",
    "file_type",
    "action_requested",
    "action_applied",
    "action_status",
    "error",
)
MEDIA_TYPES = {"csv": "text/csv; charset=utf-8", "jsonl": "application/x-ndjson"}


def csv_row(event: dict[str, Any]) -> list[Any]:
    """One result as a CSV row in :data:`CSV_COLUMNS` order."""
    connector = event.get("connector") or {}
    info = event.get("file_info") or {}
    action = event.get("action") or {}
    details = event.get("verdict_details") or {}
    error = event.get("error") or {}
    return [
        event.get("timestamp", ""),
        event.get("scan_request_id", ""),
        event.get("job_id", ""),
        connector.get("name", ""),
        connector.get("uuid", ""),
        event.get("location", ""),
        event.get("metainfo", ""),
        event.get("verdict", ""),
        threat_name(event) or "",
        details.get("threat_type") or "",
        info.get("sha256", ""),
        info.get("size_in_bytes", 0),
        info.get("file_type", ""),
        action.get("requested", ""),
        "true" if action.get("applied") else "false",
        action.get("status", ""),
        error.get("message", "") if isinstance(error, dict) else str(error),
    ]


def safe_cell(value: Any) -> Any:
    """A cell a spreadsheet will not run as a formula (OWASP CSV injection): text starting with
    ``= + - @`` (or a tab, a carriage return) gets a leading apostrophe."""
    if isinstance(value, str) and value[:1] in ("=", "+", "-", "@", "\t", "\r"):
        return "'" + value
    return value


def csv_lines(header: Iterable[str], rows: Iterable[Iterable[Any]]) -> Iterator[str]:
    """CSV text, a line at a time."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\r\n")
    writer.writerow(header)
    for row in rows:
        writer.writerow([safe_cell(value) for value in row])
        if buffer.tell() > 64 * 1024:
            yield buffer.getvalue()
            buffer.seek(0)
            buffer.truncate()
    yield buffer.getvalue()


def export_lines(events: Iterable[dict[str, Any]], fmt: ExportFormat) -> Iterator[str]:
    """The events in ``fmt``: CSV with a header, or one JSON object per line."""
    if fmt == "csv":
        yield from csv_lines(CSV_COLUMNS, (csv_row(event) for event in events))
        return
    encoder = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"))
    chunk: list[str] = []
    for event in events:
        chunk.append(encoder.encode(event) + "\n")
        if len(chunk) >= 500:
            yield "".join(chunk)
            chunk.clear()
    yield "".join(chunk)
