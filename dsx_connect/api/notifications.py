"""Notification webhooks: their delivery state."""

from __future__ import annotations

from fastapi import APIRouter
from pydantic import BaseModel, ConfigDict

from dsx_connect.api.deps import RedisDep, SettingsDep
from dsx_connect.notifications.status import webhook_stats

router = APIRouter(prefix="/notifications", tags=["notifications"])


class WebhookState(BaseModel):
    """One webhook's delivery state (its counters are those of a SIEM destination)."""

    model_config = ConfigDict(extra="allow")

    url: str
    verdicts: list[str] | None = None
    id: str
    status: str
    backlog: int
    in_flight: int = 0
    last_success: str | None = None
    last_error: str | None = None


class NotificationStats(BaseModel):
    buffer_max_events: int
    webhooks: list[WebhookState]


@router.get("/stats")
def read_notification_stats(settings: SettingsDep, client: RedisDep) -> NotificationStats:
    """Per webhook: status, backlog, events sent, dropped (buffer full) and rejected, last error."""
    return NotificationStats.model_validate(webhook_stats(client, settings.notifications))
