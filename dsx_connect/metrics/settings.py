"""``DSXCONNECT_METRICS__*``: the workers' own metrics port and the per-minute history."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field


class MetricsSettings(BaseModel):
    model_config = ConfigDict(extra="ignore")

    worker_port: int = Field(
        default=0,
        ge=0,
        le=65535,
        description="a worker serves /metrics of its PROMETHEUS_MULTIPROC_DIR on this port (0: off; "
        "for workers that do not share that folder with the API)",
    )
    worker_addr: str = Field(default="0.0.0.0", description="the address that port listens on")
    history: bool = Field(
        default=True, description="keep per-minute throughput and verdict counts in Redis (the Stats page)"
    )
    history_hours: int = Field(
        default=24, ge=1, le=168, description="how long each minute of that history is kept"
    )
