"""The shapes of schedules: what an operator sends, what is stored, what the API answers."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, field_validator, model_validator

from dsx_connect.schedules import cron


def iso(ts: float) -> str:
    """Unix seconds as RFC 3339 UTC with a trailing ``Z``."""
    return datetime.fromtimestamp(ts, UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


Trigger = Literal["api", "schedule", "scanner_change"]


class ScheduleSpec(BaseModel):
    """A connector's schedule as an operator sets it (``PUT /connectors/schedule/{uuid}``)."""

    model_config = ConfigDict(extra="forbid")

    timezone: str = Field(default="UTC", max_length=64, description="IANA time zone the cron is read in")
    cron: str | None = Field(
        default=None,
        max_length=200,
        description="5-field cron expression (minute hour day-of-month month day-of-week) of full "
        "scans; null: no periodic scan (only the rescan on a scanner change, if set)",
        examples=["0 2 * * *"],
    )
    enabled: bool = Field(default=True, description="false keeps the schedule but starts nothing")
    rescan_on_scanner_change: bool = Field(
        default=False, description="start a full scan when the scanner's identity (engine, rules) changes"
    )

    @field_validator("timezone")
    @classmethod
    def _known_zone(cls, value: str) -> str:
        try:
            cron.zone(value)
        except cron.CronError as exc:
            raise ValueError(str(exc)) from None
        return value

    @field_validator("cron")
    @classmethod
    def _valid_cron(cls, value: str | None, info: ValidationInfo) -> str | None:
        if value is None:
            return None
        try:  # a bad time zone was reported on its own field: read the cron in UTC then
            return cron.validate(value, info.data.get("timezone", "UTC"))
        except cron.CronError as exc:
            raise ValueError(str(exc)) from None

    @model_validator(mode="after")
    def _something_to_do(self) -> ScheduleSpec:
        if self.cron is None and not self.rescan_on_scanner_change:
            raise ValueError("a schedule needs a cron expression, rescan_on_scanner_change, or both")
        return self


class ScheduleRecord(ScheduleSpec):
    """A schedule as stored: the spec, its connector, and since when its slots count."""

    connector_uuid: str
    since_ts: float = Field(
        description="slots at or before this (the schedule's creation or change) never run"
    )
    updated: str


class ScheduleRun(BaseModel):
    """What the scheduler last did for a schedule."""

    last_slot: str | None = Field(default=None, description="the last slot handled (RFC 3339 UTC)")
    last_job_id: str | None = None
    last_trigger: Trigger | None = None
    last_started: str | None = Field(default=None, description="when the scheduler last started a scan")
    last_error: str | None = Field(default=None, description="why the last start failed, if it did")


class SchedulePublic(ScheduleRecord, ScheduleRun):
    """A schedule with its next run and its last one (the answer of the schedule routes)."""

    connector_name: str | None = Field(
        default=None, description="the connector's name, while it is registered"
    )
    next_run: str | None = Field(
        default=None, description="the next slot (RFC 3339 UTC); null: none or disabled"
    )


class SchedulerStatus(BaseModel):
    """Who runs the schedules now."""

    enabled_here: bool = Field(description="this API replica takes part in the scheduler election")
    leader: str | None = Field(description="the replica holding the lease (host:pid), null: none now")
    scanner_identity: str | None = Field(description="the scanner identity the leader saw last")


class SchedulesPublic(BaseModel):
    """Every schedule, and the scheduler's state."""

    schedules: list[SchedulePublic]
    scheduler: SchedulerStatus
