"""What a results search asks for (filters, keyset cursor) and what a page of answers holds.

The same filters serve the API, the exports and the reports, whichever store answers them.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Protocol

from pydantic import BaseModel, Field, field_validator

SHA256 = re.compile(r"^[0-9a-f]{64}$")
INT64_MAX = 2**63 - 1  # what a BIGINT column holds


class ResultFilters(BaseModel):
    """A search over results; every filter is optional and they combine with AND."""

    since: datetime | None = Field(default=None, description="results stored at or after this time")
    until: datetime | None = Field(default=None, description="results stored before this time")
    verdict: str | None = None
    connector: str | None = Field(default=None, max_length=64, description="connector uuid")
    job: str | None = Field(default=None, max_length=128)
    sha256: str | None = Field(default=None, description="the file's SHA-256, 64 hex digits")
    location_prefix: str | None = Field(
        default=None, max_length=4096, description="locations starting with this"
    )
    threat: str | None = Field(default=None, max_length=256, description="threat name, exactly")

    @field_validator("since", "until")
    @classmethod
    def _utc(cls, value: datetime | None) -> datetime | None:
        return value.replace(tzinfo=UTC) if value is not None and value.tzinfo is None else value

    @field_validator("verdict", "connector", "job", "location_prefix", "threat")
    @classmethod
    def _no_nul(cls, value: str | None) -> str | None:
        if value is not None and "\x00" in value:
            raise ValueError("must not contain a NUL character")
        return value

    @field_validator("sha256")
    @classmethod
    def _hex(cls, value: str | None) -> str | None:
        if value is None:
            return None
        value = value.strip().lower()
        if not SHA256.match(value):
            raise ValueError("sha256 must be 64 hexadecimal digits")
        return value

    def matches(self, event: dict[str, Any]) -> bool:
        """Whether one stored event passes every filter (for stores that filter in Python)."""
        from dsx_connect.results.rows import parse_ts_us, threat_name, to_us

        ts = parse_ts_us(event.get("timestamp"))
        if self.since is not None and ts < to_us(self.since):
            return False
        if self.until is not None and ts >= to_us(self.until):
            return False
        info = event.get("file_info") or {}
        checks = (
            (self.verdict, event.get("verdict")),
            (self.connector, (event.get("connector") or {}).get("uuid")),
            (self.job, event.get("job_id")),
            (self.sha256, (info.get("sha256") or "").lower()),
            (self.threat, threat_name(event)),
        )
        if any(wanted is not None and wanted != actual for wanted, actual in checks):
            return False
        return self.location_prefix is None or str(event.get("location", "")).startswith(self.location_prefix)

    @property
    def active(self) -> dict[str, Any]:
        return self.model_dump(exclude_none=True)


@dataclass(frozen=True)
class Cursor:
    """Where the next page starts: after the result with this time and id (newest first).

    Written ``<ts_us>_<id>``; the Redis store uses ``id`` for its sequence number and ``ts_us`` 0.
    """

    ts_us: int
    id: int

    def encode(self) -> str:
        return f"{self.ts_us}_{self.id}"

    @classmethod
    def decode(cls, text: str) -> Cursor:
        found = re.fullmatch(r"(\d{1,19})_(\d{1,19})", text.strip())
        if not found or max(int(found.group(1)), int(found.group(2))) > INT64_MAX:
            raise ValueError(f"cursor {text[:40]!r} is not one this API returned (next_cursor)")
        return cls(int(found.group(1)), int(found.group(2)))


@dataclass
class Page:
    items: list[dict[str, Any]]
    next_cursor: str | None


class ResultsReader(Protocol):
    """What the API, the exports and the reports read results through."""

    #: the filters this store serves with an index; others are applied while scanning
    indexed: frozenset[str]

    def get(self, request_id: str) -> dict[str, Any] | None: ...

    def search(self, filters: ResultFilters, cursor: Cursor | None, limit: int, offset: int = 0) -> Page: ...

    def iter_events(self, filters: ResultFilters, chunk: int = 1000) -> Iterator[dict[str, Any]]: ...

    def cheap_total(self, filters: ResultFilters) -> int | None: ...
