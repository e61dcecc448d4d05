"""Response models of the core's service, connector-driving and dead-letter routes.

Each keeps the JSON field names the route answered before it had a model (1.x clients and the
dashboard read them); new fields are additive. Answers relayed from a connector allow the fields
a connector adds.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, RootModel

from dsx_connect.state.dead_letters import DeadLetter
from shared.models import DsxaVerdict, StatusResponse, omitted_if_none


class Outcome(BaseModel):
    """A control action's answer: ``status`` and a sentence saying what happened."""

    status: Literal["success", "error"]
    message: str


# ---- service ---------------------------------------------------------------------------------


class Health(BaseModel):
    """``GET /healthz``: the process is healthy."""

    status: Literal["ok"] = "ok"
    ts: str = Field(description="RFC 3339 UTC")
    version: str


class Readiness(BaseModel):
    """``GET /readyz``: 200 when every dependency answers, 503 naming those that do not."""

    status: Literal["ok", "unavailable"]
    checks: dict[str, str] = Field(
        description="dependency → ok, or why not (redis, scanner, SIEM destinations)"
    )
    failing: list[str] = Field(description="the checks that fail readiness")
    degraded: list[str] = Field(
        description="SIEM destinations down (fail readiness only with SUPERLOG__FAIL_READYZ)"
    )
    ts: str


class Features(BaseModel):
    """What this core offers."""

    model_config = ConfigDict(extra="allow")

    scan_request_batch: bool
    jobs: bool
    sse: bool
    tls: bool


class Meta(BaseModel):
    """``GET /meta``: version, build and features."""

    name: str
    version: str
    app_env: str
    api_prefix: str
    features: Features


class BatchingConfig(BaseModel):
    """The ``/config`` keys a connector reads without a credential (SPEC §8: batch sizing)."""

    scan_request_batch_enabled: bool
    scan_request_batch_default_size: int
    scan_request_batch_max_size: int


class ConnectorConfigView(BaseModel):
    """What ``GET /config`` shows a caller without an operator credential (the 1.x JSON shape)."""

    workers: BatchingConfig


class EffectiveConfig(BaseModel):
    """What ``GET /config`` shows an operator: every setting of the core, secrets redacted (the
    settings' own nesting; the main sections are named here)."""

    model_config = ConfigDict(extra="allow")

    app_env: str
    redis_url: str
    scanner: dict[str, Any]
    workers: dict[str, Any]


class ConfigAnswer(RootModel[EffectiveConfig | ConnectorConfigView]):
    """``GET /config``: the operator's view, or the batching keys a connector may read unsigned."""


class ScannerCheck(BaseModel):
    """``GET /test/dsxa-connection``: whether the scanner answered a tiny benign sample (502 when not)."""

    status: Literal["success", "error"]
    message: str
    scanner_url: str
    verdict: DsxaVerdict | None = omitted_if_none("the scanner's answer (on success)")


# ---- driving a connector ----------------------------------------------------------------------


class Registration(StatusResponse):
    """``POST /connectors/register``: with auth on, the connector's DSX-HMAC pair (1.x field names)."""

    connector_uuid: str | None = omitted_if_none("the registered uuid (auth on)")
    hmac_key_id: str | None = omitted_if_none("the connector's key id (auth on)")
    hmac_secret: str | None = omitted_if_none("the connector's secret (auth on; store it)")
    hmac_previous_valid_s: int | None = omitted_if_none(
        "seconds the connector's pair before this one stays valid (auth on; 0: none is, drop it now)"
    )


class FullScanAnswer(StatusResponse):
    """``POST /connectors/full_scan/{uuid}`` (202): the job, and the connector's estimate if any."""

    job_id: str
    estimate: dict[str, Any] | None = Field(description="the connector's GET /estimate answer, or null")


class ConnectorAnswer(BaseModel):
    """A connector's own answer, relayed as it came (SPEC §5); a 5xx of an unavailable connector is our 502."""

    model_config = ConfigDict(extra="allow")

    status: str | None = omitted_if_none("the connector's status (StatusResponse-shaped answers)")
    message: str | None = omitted_if_none("what the connector says")


class ConnectorEstimate(BaseModel):
    """A connector's ``GET /estimate`` (SPEC §5), relayed."""

    model_config = ConfigDict(extra="allow")

    count: int | None = None
    confidence: str = "unknown"
    bytes: int | None = omitted_if_none("the asset's size, when the storage tells")


class StateValue(BaseModel):
    """A connector's stored cursor, as 1.x connectors read it."""

    value: str


# ---- dead letters -----------------------------------------------------------------------------


class DeadLetterStats(BaseModel):
    """``GET /dlq/stats``: how many items ran out of retries, by stage."""

    count: int
    by_stage: dict[str, int] = Field(description="scan, action, result → count")
    oldest: str | None = Field(description="when the oldest letter failed (RFC 3339)")
    newest: str | None
    retain_s: int = Field(description="how long a letter is kept")
    requeued: int = Field(
        description="letters requeued whose attempt has not finished yet (they stay until it does)"
    )


class DeadLetterPage(BaseModel):
    """``GET /dlq/items``: dead letters, newest first."""

    items: list[DeadLetter]
    total: int
    limit: int
    offset: int
    next_cursor: str | None = Field(
        default=None, description="give as `cursor` for the next page (stable while letters arrive)"
    )


class Requeued(BaseModel):
    """``POST /dlq/requeue``: what went back into the pipeline, by stage."""

    status: Literal["success"] = "success"
    requeued: int
    scan: int
    action: int
    result: int
    not_found: list[str] = Field(description="requested ids that are not dead letters")
    already_requeued: list[str] = Field(
        default_factory=list,
        description="letters requeued earlier whose attempt has not finished: not sent again",
    )


class Cleared(BaseModel):
    """``DELETE /dlq``: how many letters were deleted."""

    status: Literal["success"] = "success"
    cleared: int
