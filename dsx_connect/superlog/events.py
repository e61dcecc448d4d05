"""The event as the feed sends it: the SPEC §7 object, redacted, and its DSX-Connect 1.x shape (SPEC §11)."""

from __future__ import annotations

import hashlib
import json
from datetime import UTC, datetime
from typing import Any

from dsx_connect.superlog.config import RedactSettings


class Redactor:
    """Applies ``DSXCONNECT_SUPERLOG__REDACT__*`` to an event: keep, hash or drop location and metainfo."""

    def __init__(self, settings: RedactSettings) -> None:
        self.rules = {"location": settings.location, "metainfo": settings.metainfo}
        self.salt = (settings.salt.get_secret_value() if settings.salt else "").encode()
        self.noop = all(rule == "keep" for rule in self.rules.values())

    def hash(self, value: str) -> str:
        """``sha256:`` and the hex SHA-256 of salt + value: the same value always maps to the same text."""
        return "sha256:" + hashlib.sha256(self.salt + value.encode()).hexdigest()

    def __call__(self, event: dict[str, Any]) -> dict[str, Any]:
        if self.noop:
            return event
        event = dict(event)
        for name, rule in self.rules.items():
            if rule == "drop":
                event.pop(name, None)
            elif rule == "hash" and isinstance(event.get(name), str):
                event[name] = self.hash(event[name])
        return event


def compact(event: dict[str, Any]) -> str:
    """One line of compact JSON, non-ASCII kept as UTF-8."""
    return json.dumps(event, separators=(",", ":"), ensure_ascii=False)


def event_time(event: dict[str, Any]) -> datetime:
    """The event's ``timestamp`` (RFC 3339) as an aware UTC datetime; now when absent or unreadable."""
    raw = event.get("timestamp")
    if isinstance(raw, str):
        try:
            parsed = datetime.fromisoformat(raw.replace("Z", "+00:00"))
            return parsed.astimezone(UTC) if parsed.tzinfo else parsed.replace(tzinfo=UTC)
        except ValueError:
            pass
    return datetime.now(UTC)


def legacy_object(event: dict[str, Any]) -> dict[str, Any]:
    """The 1.x syslog object: ``timestamp``, ``source``, ``scan_request``, ``verdict``, ``item_action``,
    then every SPEC §7 field that does not collide.

    ``verdict`` keeps its 1.x meaning (the scanner's verdict object); the §7 verdict name is
    ``verdict.verdict``, as 1.x parsers read it.
    """
    connector = event.get("connector") or {}
    file_info = event.get("file_info") or {}
    scanner = event.get("scanner") or {}
    action = event.get("action") or {}
    scan_request = {
        "connector": connector,
        "location": event.get("location"),
        "metainfo": event.get("metainfo"),
        "scan_job_id": event.get("job_id"),
        "size_in_bytes": file_info.get("size_in_bytes"),
    }
    for name in ("location", "metainfo"):
        if name not in event:  # dropped by redaction
            scan_request.pop(name)
    legacy: dict[str, Any] = {
        "timestamp": event.get("timestamp"),
        "source": "dsx-connect",
        "scan_request": scan_request,
        "verdict": {
            "scan_guid": scanner.get("scan_guid", ""),
            "verdict": event.get("verdict"),
            "verdict_details": event.get("verdict_details") or {},
            "file_info": {
                "file_type": file_info.get("file_type", ""),
                "file_size_in_bytes": file_info.get("size_in_bytes", 0),
                "file_hash": file_info.get("sha256", ""),
            },
            "scan_duration_in_microseconds": scanner.get("duration_us", 0),
        },
        "item_action": {
            "status": action.get("status", "nothing"),
            "message": action.get("message", ""),
            "description": None,
            "item_action": action.get("requested", "nothing") if action.get("applied") else "nothing",
        },
    }
    for key, value in event.items():
        legacy.setdefault(key, value)
    return legacy
