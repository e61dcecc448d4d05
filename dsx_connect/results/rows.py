"""A result event (SPEC §7) as a row of the SQL history, and the few facts derived from it."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

from pydantic_core import PydanticSerializationError, to_json

from dsx_connect.results.search import INT64_MAX, SHA256

_COMPACT = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"))
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def sha256_of(value: object) -> str | None:
    """The hex SHA-256 a scanner reported, lower case; None when it reported something else (another
    hash, junk), which a ``sha256`` column or search must not hold."""
    text = value.lower() if isinstance(value, str) else ""
    return text if SHA256.match(text) else None


def to_us(moment: datetime) -> int:
    """Microseconds since the epoch of an aware (or UTC-naive) time."""
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    delta = moment - _EPOCH
    return (delta.days * 86400 + delta.seconds) * 1_000_000 + delta.microseconds


def parse_ts_us(value: str | None) -> int:
    """Microseconds of an RFC 3339 timestamp (0 when absent)."""
    if not value:
        return 0
    return to_us(datetime.fromisoformat(value.replace("Z", "+00:00")))


def threat_name(event: dict[str, Any]) -> str | None:
    """The threat a Malicious result names: the scanner's reason (a rule or signature name), else
    its threat type; None for anything not Malicious."""
    if event.get("verdict") != "Malicious":
        return None
    details = event.get("verdict_details") or {}
    # the scanner's text: PostgreSQL's text holds no NUL, and a row refused for one lost the verdict
    name = str(details.get("reason") or details.get("threat_type") or "").replace("\x00", "").strip()
    return name[:256] or None


def encode_event(event: dict[str, Any]) -> str:
    """An event's stored text: compact, UTF-8 as is (the same text as pydantic's ``model_dump_json``).
    Redis and the SQL history keep the same text, encoded once per event by the result step.

    pydantic-core's encoder writes what ``json`` (compact, ``ensure_ascii=False``) wrote, four times
    faster, which a rescan's thousands of events a second notice; a small float's exponent is the
    one difference (``2.5e-7``, not ``2.5e-07``: the same value). What it refuses (a location with a
    lone surrogate, a name no UTF-8 can hold) is written by ``json`` as before."""
    try:
        return to_json(event).decode()
    except PydanticSerializationError:
        return _COMPACT.encode(event)


def to_row(event: dict[str, Any], text: str) -> dict[str, Any]:
    """The columns of one event (``text``: its :func:`encode_event`)."""
    action = event.get("action") or {}
    info = event.get("file_info") or {}
    connector = event.get("connector") or {}
    return {
        "scan_request_id": event["scan_request_id"],
        "ts_us": parse_ts_us(event.get("timestamp")),
        "job_id": event.get("job_id") or "",
        "connector_uuid": connector.get("uuid") or "",
        "connector_name": (connector.get("name") or "")[:200],
        "location": event.get("location") or "",
        "verdict": event.get("verdict") or "",
        "threat_name": threat_name(event),
        "sha256": sha256_of(info.get("sha256")),
        # the bytes scanned for it, as the job's Redis counter counts them: none for a result served
        # from the scan cache; the scanner's number as BIGINT holds it (a wild one must not cost the row)
        "size_bytes": 0
        if (event.get("scanner") or {}).get("cached")
        else max(-INT64_MAX, min(int(info.get("size_in_bytes") or 0), INT64_MAX)),
        "action": (action.get("requested") or "") if action.get("applied") else "",
        "action_status": (action.get("status") or "")[:16],
        "failed": bool(event.get("error")),
        "event": text,
    }
