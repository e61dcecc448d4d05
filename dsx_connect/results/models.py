"""Typed answers of the results, stats, report and job routes (today's JSON field names kept)."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field, model_validator

from shared.models import ScanResultEvent


class ResultsPage(BaseModel):
    """A page of results, newest first; pass ``next_cursor`` back as ``cursor`` for the next one."""

    items: list[ScanResultEvent]
    count: int
    total: int | None = Field(description="all matching results, when known cheaply (else null)")
    limit: int
    offset: int
    next_cursor: str | None = Field(default=None, description="null on the last page")
    backend: str = Field(description="the store that answered: redis, memory, sqlite or postgresql")


class ScanRequestView(BaseModel):
    """One scan request: ``queued`` (or its stored state's status) until its result is stored."""

    id: str
    status: str
    state: dict[str, str] = Field(description="the request's stored state while it is in flight")
    result: ScanResultEvent | None


class StatsView(BaseModel):
    """Counters since the start (they keep counting past retention)."""

    total: int
    verdicts: dict[str, int]
    errors: int
    bytes_scanned: int
    actions: dict[str, int]
    retained_results: int
    cached: int = Field(
        default=0, description="results served by the unchanged-object index (docs/scan-cache.md)"
    )


class JobEstimate(BaseModel):
    count: int | None = None
    bytes: int | None = None
    confidence: str = "unknown"


class JobView(BaseModel):
    """A job (SPEC §6), with the UI notes' names (``enqueued_count``, ``processed_count``,
    ``expected_total``, ``finished_at``) served beside ours."""

    model_config = ConfigDict(extra="allow")

    job_id: str | None
    connector_uuid: str | None = None
    connector_name: str | None = None
    kind: str = "full_scan"
    trigger: str | None = Field(default=None, description="who started it: api, schedule, scanner_change")
    status: str | None = None
    failure_reason: str | None = None
    enqueue_done: bool = False
    enqueued_total: int | None = None
    enqueued: int = 0
    processed: int = 0
    skipped: int = 0
    not_yet_scanned: int = 0
    errors: int = 0
    bytes_scanned: int = 0
    cached: int = Field(
        default=0, description="items served by the unchanged-object index, neither read nor scanned"
    )
    force: bool = Field(default=False, description="started with force=true: every item read and scanned")
    verdicts: dict[str, int] = Field(default_factory=dict)
    actions: dict[str, int] = Field(default_factory=dict)
    estimate: JobEstimate = Field(default_factory=JobEstimate)
    created: str | None = None
    started: str | None = None
    finished: str | None = None
    last_update: str | None = None
    throughput_fps: float = 0.0
    eta_s: float | None = None
    paused: bool = False
    cancel: bool = False
    stalled: bool = False
    rev: int | str | None = None
    enqueued_count: int = 0
    processed_count: int = 0
    expected_total: int | None = None
    finished_at: str | None = None

    @model_validator(mode="before")
    @classmethod
    def _ui_names(cls, data: Any) -> Any:
        if isinstance(data, dict):
            data = dict(data)
            data.setdefault("enqueued_count", data.get("enqueued") or 0)
            data.setdefault("processed_count", data.get("processed") or 0)
            data.setdefault("expected_total", data.get("enqueued_total"))
            data.setdefault("finished_at", data.get("finished"))
        return data


class JobsPage(BaseModel):
    items: list[JobView]
    total: int | None
    limit: int
    offset: int


class JobAnswer(BaseModel):
    """The answer of a job control (pause, resume, cancel) or of ``enqueue_done``: the job after it.

    Cancel adds how many items were scanned and skipped so far, and how many not yet scanned will
    be skipped as workers reach them."""

    status: str
    message: str
    job: JobView | None
    previous_status: str | None = None
    job_status: str | None = Field(default=None, description="the job's status, on a 409")
    processed: int | None = None
    skipped: int | None = None
    not_yet_scanned: int | None = None


class JobRaw(BaseModel):
    """A job's stored fields as text; connectors read ``data.paused`` and ``data.cancel`` (``"1"``)."""

    job_id: str
    key: str | None = Field(default=None, description="the record's Redis key (1.x)")
    ttl: int | None = Field(default=None, description="seconds before the job is forgotten (1.x)")
    data: dict[str, str]


class MaliciousFile(BaseModel):
    scan_request_id: str
    timestamp: str
    location: str
    sha256: str
    threat_name: str | None
    threat_type: str | None
    action: str = Field(description="the action requested for it")
    action_applied: bool
    action_status: str


class FailedFile(BaseModel):
    scan_request_id: str
    timestamp: str
    location: str
    error: str


class JobReport(BaseModel):
    """One job: verdict totals, malicious files with threats and actions, duration, throughput, errors."""

    job_id: str
    connector_uuid: str | None
    connector_name: str | None
    status: str | None
    started: str | None
    finished: str | None
    duration_s: float | None
    results: int
    verdicts: dict[str, int]
    actions: dict[str, int]
    errors: int
    bytes_scanned: int
    files_per_s: float | None
    bytes_per_s: float | None
    malicious: list[MaliciousFile]
    malicious_truncated: bool = Field(description="more malicious files than listed (see the results export)")
    failures: list[FailedFile]
    failures_truncated: bool
    source: str = Field(description="where the counts come from: the job record, or the results history")


class JobComparisonRow(BaseModel):
    job_id: str
    connector_name: str | None
    status: str | None
    started: str | None
    finished: str | None
    duration_s: float | None
    results: int
    verdicts: dict[str, int]
    errors: int
    bytes_scanned: int
    files_per_s: float | None


class JobComparison(BaseModel):
    """Two or more jobs side by side; ``verdicts`` lists every verdict any of them has."""

    jobs: list[JobComparisonRow]
    verdicts: list[str]
