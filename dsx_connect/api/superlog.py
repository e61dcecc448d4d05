"""The scan-result feed to SIEMs: its state per destination."""

from __future__ import annotations

from fastapi import APIRouter
from pydantic import BaseModel, ConfigDict

from dsx_connect.api.deps import RedisDep, SettingsDep
from dsx_connect.superlog.status import feed_stats

router = APIRouter(prefix="/superlog", tags=["superlog"])


class DestinationState(BaseModel):
    """One destination: ``ok``, ``down``, ``stalled`` or ``pending``, its backlog and counters."""

    model_config = ConfigDict(extra="allow")

    status: str
    backlog: int
    in_flight: int
    sent: int = 0
    dropped: int = 0
    rejected: int = 0
    enqueued: int = 0
    failures: int = 0
    last_success: str | None = None
    last_error: str | None = None
    last_error_at: str | None = None
    last_rejected: str | None = None
    forwarder: str | None = None


class SuperlogStats(BaseModel):
    enabled: bool
    forwarder: str
    buffer_max_events: int
    destinations: dict[str, DestinationState]


@router.get("/stats")
def read_superlog_stats(settings: SettingsDep, client: RedisDep) -> SuperlogStats:
    """Per destination: status, backlog, events sent, dropped (buffer full) and rejected, last error."""
    return SuperlogStats.model_validate(feed_stats(client, settings))
