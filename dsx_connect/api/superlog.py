"""The scan-result feed to SIEMs: its state per destination."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter

from dsx_connect.api.deps import RedisDep, SettingsDep
from dsx_connect.superlog.status import feed_stats

router = APIRouter(prefix="/superlog", tags=["superlog"])


@router.get("/stats")
def read_superlog_stats(settings: SettingsDep, client: RedisDep) -> dict[str, Any]:
    """Per destination: status, backlog, events sent, dropped (buffer full) and rejected, last error."""
    return feed_stats(client, settings)
