"""Response models of the routes every connector serves (SPEC §1, §5; ``shared/connector/routes.py``).

They keep the JSON field names the routes answered before they had models, which the core and
1.x tooling read; StatusResponse-shaped answers keep allowing the fields a storage adds.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from shared.models import StatusResponse, omitted_if_none


class ConnectorHealth(BaseModel):
    """``GET /healthz``: the process is up."""

    status: Literal["ok"] = "ok"
    connector: str = Field(description="the connector's name")
    ts: str = Field(description="RFC 3339 UTC")


class WebhookStats(BaseModel):
    """Storage change notifications verified and refused since start."""

    verify: bool
    accepted: int
    refused: int


class ConnectorReadiness(BaseModel):
    """``GET /readyz``: ``ready`` (200), or ``error`` (503) naming what is not."""

    status: Literal["ready", "error"]
    ts: str | None = omitted_if_none("RFC 3339 UTC (when ready)")
    failing: list[str] | None = omitted_if_none("asset, dsx-connect: what is not ready (503)")
    message: str | None = omitted_if_none("why (503)")
    webhooks: WebhookStats


class MonitorState(BaseModel):
    enabled: bool
    running: bool
    error: str | None = omitted_if_none("why the watcher failed, until it runs again (signed callers only)")


class FullScanState(BaseModel):
    """A running full scan."""

    model_config = ConfigDict(extra="allow")

    job_id: str
    limit: int | None
    state: str
    enumerated: int
    submitted: int
    started: float = Field(description="Unix seconds")
    finished: float | None
    error: str | None


class ConnectorIdentity(BaseModel):
    """``GET /``: who this connector is and what it is doing (uuid and asset to signed callers only)."""

    name: str
    display_name: str
    uuid: str | None = omitted_if_none("only to a signed caller (the core)")
    asset: str | None = omitted_if_none("only to a signed caller (the core)")
    version: str
    url: str
    filter: str
    item_action: str
    registered: bool
    monitor: MonitorState
    scans: list[FullScanState]


class ConnectorVersion(BaseModel):
    """``GET /version``."""

    name: str
    version: str


class FullScanAccepted(StatusResponse):
    """``POST /full_scan`` (202): the job it runs for (also in ``X-Job-Id``)."""

    job_id: str
    limit: int | None
    submitted: int = Field(description="items submitted so far (a running scan of the same job)")


class ItemActionAnswer(StatusResponse):
    """``PUT /item_action``: the outcome (``status``), the action and the item; 4xx/5xx carry ``error``."""

    item_action: str
    location: str
    destination: str | None = omitted_if_none("where a move put the item")


class ConnectorConfig(BaseModel):
    """``GET /config``: the connector's settings, secrets redacted (storage settings added)."""

    model_config = ConfigDict(extra="allow")

    name: str
    asset: str
    filter: str
    item_action: str
    item_action_move_metainfo: str
    monitor: bool


class ConfigUpdated(StatusResponse):
    """``PUT /config``: the settings now in force."""

    config: dict[str, Any] = Field(description="as GET /config answers")


class WebhookAccepted(StatusResponse):
    """``POST /webhook/event``: how many items the notification submitted (a storage's handshake
    may answer its own body instead)."""

    submitted: int | None = omitted_if_none("items submitted for scanning")
