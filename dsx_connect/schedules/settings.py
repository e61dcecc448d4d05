"""Settings of the scheduler (``DSXCONNECT_SCHEDULER__*``)."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field, model_validator


class SchedulerSettings(BaseModel):
    """One scheduler runs across the API replicas: the one holding the lease starts due scans."""

    model_config = ConfigDict(extra="ignore")

    enabled: bool = Field(default=True, description="run the scheduler in this API process")
    poll_s: float = Field(default=5.0, gt=0, le=60, description="how often the scheduler looks for due slots")
    lease_ttl_s: float = Field(
        default=30.0,
        ge=0.5,
        le=600,
        description="the leader's lease; another replica takes over this long after the leader stopped",
    )
    scanner_poll_s: float = Field(
        default=60.0, gt=0, description="how often the leader reads the scanner's identity (GET /version)"
    )
    claim_ttl_s: int = Field(
        default=35 * 86400,
        ge=3600,
        description="how long the record that a slot (or a scanner identity) was started is kept",
    )

    @model_validator(mode="after")
    def _lease_outlasts_polls(self) -> SchedulerSettings:
        if self.lease_ttl_s < 2 * self.poll_s:
            raise ValueError(
                f"DSXCONNECT_SCHEDULER__LEASE_TTL_S ({self.lease_ttl_s:g}) must be at least twice "
                f"DSXCONNECT_SCHEDULER__POLL_S ({self.poll_s:g}): the leader renews its lease on each poll"
            )
        return self
