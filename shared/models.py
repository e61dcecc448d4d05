"""Pydantic models at the boundaries between core, connectors, scanner and SIEM feeds.

The wire shapes follow SPEC §4, §5 and §7, and stay compatible with DSX-Connect 1.x connectors:
unknown fields are ignored on input, and every change here is additive.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from enum import StrEnum
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, field_validator


def utcnow_iso() -> str:
    """Current time as RFC 3339 UTC with a trailing ``Z``."""
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


#: the largest size a connector may declare and a scanner's answer is taken with: any file's size
#: fits; a wilder number (past what Redis counters and BIGINT columns add up) is refused from a
#: connector and read as this from a scanner
MAX_REPORTED_SIZE = 2**53 - 1


class ItemActionType(StrEnum):
    NOT_IMPLEMENTED = "not implemented"
    NOTHING = "nothing"
    DELETE = "delete"
    MOVE = "move"
    TAG = "tag"
    MOVE_TAG = "movetag"


class ConnectorStatus(StrEnum):
    READY = "ready"
    STARTING = "starting"
    STOPPED = "stopped"
    FAILED = "failed"


class Verdict(StrEnum):
    BENIGN = "Benign"
    MALICIOUS = "Malicious"
    UNKNOWN = "Unknown"
    UNSUPPORTED = "Unsupported File Type"
    NOT_SCANNED = "Not Scanned"
    SCANNING = "Scanning"
    NON_COMPLIANT = "Non Compliant"


_SURROGATE = re.compile("[\ud800-\udfff]")


def _plain_text(value: str) -> str:
    """Text every store can hold: no NUL (PostgreSQL text refuses it) and no lone surrogate (no UTF-8
    encoding exists: the task could not be encoded after its job was created)."""
    if "\x00" in value:
        raise ValueError("must not contain a NUL character")
    if not value.isascii() and _SURROGATE.search(value):
        raise ValueError("must not contain a lone surrogate (not valid Unicode text)")
    return value


#: a string field of a request that is stored and forwarded
Text = Annotated[str, AfterValidator(_plain_text)]


#: what a connector uuid may look like: 1-64 letters, digits, ``.``, ``_`` or ``-``
CONNECTOR_UUID_PATTERN = r"^[A-Za-z0-9._-]{1,64}$"


class ConnectorInstance(BaseModel):
    """A connector as it registers with the core (the 1.x ``ConnectorInstanceModel`` shape)."""

    model_config = ConfigDict(extra="ignore")

    name: Text = Field(default="connector", min_length=1, max_length=200)
    display_name: str | None = None
    # a plain token: it becomes part of Redis keys and job ids (a ``:`` moved a key's boundary, so
    # ``B:evil`` could address ``B``'s keys); uuid4/uuid5 strings and hex digests fit
    uuid: str = Field(min_length=1, max_length=64, pattern=CONNECTOR_UUID_PATTERN)
    meta_info: str | None = None
    url: str = ""
    status: ConnectorStatus = ConnectorStatus.STARTING
    item_action: ItemActionType = ItemActionType.NOTHING
    item_action_move_metainfo: str = ""
    asset: str = ""
    asset_display_name: str | None = None
    filter: str = ""
    version: str | None = None

    @field_validator("uuid", mode="before")
    @classmethod
    def _uuid_as_text(cls, value: Any) -> Any:
        return str(value) if value is not None and not isinstance(value, str) else value


class RegisteredConnector(ConnectorInstance):
    """A connector as the core keeps it: the registration plus bookkeeping."""

    # a record stored before uuids were constrained still reads (it can no longer register or submit)
    uuid: str = Field(min_length=1, max_length=64)

    registered_at: str = Field(default_factory=utcnow_iso)
    last_heartbeat: str = Field(default_factory=utcnow_iso)
    last_heartbeat_ts: float = 0.0


class ActionDestination(BaseModel):
    model_config = ConfigDict(extra="ignore")

    path: Text | None = None
    prefix: Text | None = None
    filename: Text | None = None


class RequestedAction(BaseModel):
    model_config = ConfigDict(extra="ignore")

    type: ItemActionType = ItemActionType.NOTHING
    destination: ActionDestination | None = None
    tags: dict[Text, Text] = Field(default_factory=dict)


class ScanRequest(BaseModel):
    """One item a connector asks the core to scan (SPEC §4)."""

    model_config = ConfigDict(extra="ignore")

    connector: ConnectorInstance | None = None
    location: Text = Field(min_length=1, max_length=4096)
    metainfo: Text = Field(max_length=4096)
    connector_url: str | None = None
    size_in_bytes: int | None = Field(default=None, ge=0, le=MAX_REPORTED_SIZE)
    scan_job_id: str | None = Field(default=None, max_length=128)
    job_item_id: Text | None = Field(default=None, max_length=128)
    requested_action: RequestedAction | None = None
    item_version: Text | None = Field(
        default=None,
        max_length=256,
        description=(
            "on item_action: act only on this version of the item (shared/item_version.py); on a scan"
            " request: the version the connector listed, the key of the core's unchanged-object index"
        ),
    )


class ScanRequestBatch(BaseModel):
    requests: list[ScanRequest] = Field(min_length=1, max_length=5000)


class StatusResponse(BaseModel):
    """The answer of register, scan requests, full scans and connector actions (SPEC §4)."""

    model_config = ConfigDict(extra="allow")

    status: Literal["success", "error", "nothing"]
    message: str
    description: str | None = None
    id: str | None = None
    preview: list[str] | None = None


def _is_none(value: Any) -> bool:
    return value is None


def omitted_if_none(description: str) -> Any:
    """An optional answer field left out of the JSON when None, for fields that earlier answers
    carried only sometimes (a client that tests for the key keeps working)."""
    return Field(default=None, exclude_if=_is_none, description=description)


class ScanRequestsAccepted(StatusResponse):
    """``POST /scan/request`` and ``/scan/request_batch`` (202): the ids of the accepted requests."""

    job_id: str | None = omitted_if_none("the job of the request (single request)")
    ids: list[str] | None = omitted_if_none("the scan request ids, in the order of the batch")
    accepted: int | None = omitted_if_none("how many requests of the batch were accepted")


class FullScanStarted(StatusResponse):
    """A full scan's start (202): ``id`` and ``job_id`` both name the job (header ``X-Job-Id`` too)."""

    job_id: str


class ScanTask(BaseModel):
    """A scan request accepted by the core, as it travels through the worker queues."""

    model_config = ConfigDict(extra="ignore")

    id: str
    connector_uuid: str
    connector_name: str = ""
    location: str
    metainfo: str = ""
    size_in_bytes: int | None = None
    job_id: str
    job_item_id: str | None = None
    requested_action: RequestedAction | None = None
    accepted_at: str = Field(default_factory=utcnow_iso)
    attempt: int = 0
    item_version: str | None = None  # as the connector listed it: the unchanged-object index's key
    resend: int = 0  # 0: the item as accepted; n: the n-th copy the lease sweep sent again

    @classmethod
    def load(cls, raw: str | bytes | dict[str, Any]) -> ScanTask:
        """A task of a scan message: its JSON text (as the intake sends it, encoded once for the
        pending entry and the message), or a dict (the other senders, older messages)."""
        return cls.model_validate_json(raw) if isinstance(raw, str | bytes) else cls.model_validate(raw)


class EstimateResponse(BaseModel):
    # bounded: a job's ETA divides by these (a number past a float broke every view of the job)
    count: int | None = Field(default=None, le=MAX_REPORTED_SIZE)
    confidence: Literal["exact", "unknown"] = "unknown"
    bytes: int | None = Field(default=None, le=MAX_REPORTED_SIZE)


# ---- scanner verdicts (SPEC §3) -------------------------------------------------------------


class VerdictDetails(BaseModel):
    # a scanner sending a number where text belongs (a threat type, a description) is read, not refused
    model_config = ConfigDict(extra="allow", coerce_numbers_to_str=True)

    event_description: str = ""
    reason: str = ""
    threat_type: str | None = None


class DsxaFileInfo(BaseModel):
    model_config = ConfigDict(extra="allow", coerce_numbers_to_str=True)

    file_type: str = ""
    file_size_in_bytes: int = 0
    file_hash: str = ""

    @field_validator("file_size_in_bytes", mode="after")
    @classmethod
    def _a_size_a_file_can_have(cls, size: int) -> int:
        """A negative size (some scanners' "unknown") reads as 0; a wild one as ``MAX_REPORTED_SIZE``,
        so the bytes counted for a job or in the stats never go negative or overflow."""
        return max(0, min(size, MAX_REPORTED_SIZE))


class DsxaVerdict(BaseModel):
    """A scanner's answer, after lenient parsing (see ``shared.dsxa.protocol``)."""

    model_config = ConfigDict(extra="allow", populate_by_name=True, coerce_numbers_to_str=True)

    scan_guid: str = ""
    verdict: str = Verdict.NOT_SCANNED.value
    verdict_details: VerdictDetails = Field(default_factory=VerdictDetails)
    file_info: DsxaFileInfo = Field(default_factory=DsxaFileInfo)
    scan_duration_in_microseconds: int = 0
    protected_entity: int = 1
    x_custom_metadata: str | None = Field(default=None, alias="X-Custom-Metadata")


# ---- scan result event (SPEC §7) ------------------------------------------------------------


class EventConnector(BaseModel):
    name: str = ""
    uuid: str = ""


class EventFileInfo(BaseModel):
    file_type: str = ""
    size_in_bytes: int = 0
    sha256: str = ""


class EventAction(BaseModel):
    requested: str = ItemActionType.NOTHING.value
    applied: bool = False
    status: str = "nothing"
    message: str = ""


class EventScanner(BaseModel):
    scan_guid: str = ""
    duration_us: int = 0
    engine_version: str = ""
    cached: bool = False


class EventError(BaseModel):
    kind: Literal["permanent", "retryable", "exhausted"]
    message: str


# RFC 5424 §6.2.1 severities
_SEVERITY_BY_VERDICT = {
    Verdict.MALICIOUS.value: 2,  # critical
    Verdict.NON_COMPLIANT.value: 4,  # warning
    Verdict.NOT_SCANNED.value: 5,  # notice
    Verdict.UNKNOWN.value: 5,
    Verdict.UNSUPPORTED.value: 5,
    Verdict.SCANNING.value: 5,
    Verdict.BENIGN.value: 6,  # informational
}


def severity_for(verdict: str, failed: bool = False) -> int:
    """Syslog severity (RFC 5424) of a verdict; a failed scan is an error (3)."""
    if failed:
        return 3
    return _SEVERITY_BY_VERDICT.get(verdict, 5)


class ScanResultEvent(BaseModel):
    """One scanned item: the same object on SSE, in the results store and in every SIEM output."""

    model_config = ConfigDict(extra="allow")

    event_type: Literal["scan_result"] = "scan_result"
    schema_version: int = 1
    timestamp: str = Field(default_factory=utcnow_iso)
    scan_request_id: str
    job_id: str
    connector: EventConnector
    location: str
    metainfo: str = ""
    verdict: str
    verdict_details: VerdictDetails = Field(default_factory=VerdictDetails)
    file_info: EventFileInfo = Field(default_factory=EventFileInfo)
    action: EventAction = Field(default_factory=EventAction)
    scanner: EventScanner = Field(default_factory=EventScanner)
    severity: int = 6
    error: EventError | None = None
