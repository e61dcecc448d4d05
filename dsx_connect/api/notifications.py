"""Notification webhooks: their delivery state."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter

from dsx_connect.api.deps import RedisDep, SettingsDep
from dsx_connect.notifications.status import webhook_stats

router = APIRouter(prefix="/notifications", tags=["notifications"])


@router.get("/stats")
def read_notification_stats(settings: SettingsDep, client: RedisDep) -> dict[str, Any]:
    """Per webhook: status, backlog, events sent, dropped (buffer full) and rejected, last error."""
    return webhook_stats(client, settings.notifications)
