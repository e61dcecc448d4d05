"""Results stored per minute, by verdict: the curve of the dashboard's Stats page (docs/metrics.md)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, HTTPException, Query

from dsx_connect.api.deps import RedisDep, SettingsDep
from dsx_connect.state import stats_history as history
from dsx_connect.state.stats_history import StatsHistory

router = APIRouter(prefix="/scan", tags=["results"])


@router.get("/stats/history")
def get_stats_history(
    client: RedisDep,
    settings: SettingsDep,
    minutes: Annotated[int, Query(ge=1, le=7 * 24 * 60, description="how many minutes, up to now")] = 60,
) -> StatsHistory:
    """Results stored in each of the last ``minutes`` minutes (the current one last), by verdict."""
    kept = settings.metrics.history_hours * 60
    if minutes > kept:
        raise HTTPException(
            422, f"minutes: at most {kept} (DSXCONNECT_METRICS__HISTORY_HOURS keeps {kept // 60} h)"
        )
    return history.read(client, minutes)
