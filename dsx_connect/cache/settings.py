"""Settings of the scan cache (``DSXCONNECT_SCAN_CACHE__*``)."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field


class ScanCacheSettings(BaseModel):
    """The unchanged-object index: on by default; ``enabled=false`` scans every item every time."""

    model_config = ConfigDict(extra="ignore")

    enabled: bool = True
    at_intake: bool = Field(
        default=True,
        description=(
            "serve unchanged items of a full scan at intake: the API looks the batch up and sends its hits"
            " straight to the result (or action) step, with no scan task"
        ),
    )
    max_entries: int = Field(
        default=100_000,
        ge=100,
        description=(
            "Redis store only: entries kept per connector, about 0.5 KB each (the SQL history keeps one row"
            " per item)"
        ),
    )
    identity_ttl_s: float = Field(
        default=1.0,
        gt=0,
        le=3600,
        description="how long a worker trusts the scanner identity it read from /version before asking again",
    )
    version_url: str | None = Field(
        default=None,
        pattern=r"^https?://",
        description="the scanner route that answers its identity; default: the scan URL's origin + /version",
    )
