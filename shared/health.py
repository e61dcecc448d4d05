"""Liveness routes every service answers (SPEC §1): ``/alive`` and ``/ping``, touching no dependency."""

from __future__ import annotations

from typing import Literal

from fastapi import APIRouter
from pydantic import BaseModel, Field

from shared.models import utcnow_iso


class Liveness(BaseModel):
    """``GET /alive`` and ``GET /ping``: the process answers."""

    status: Literal["ok", "pong"]
    ts: str = Field(description="RFC 3339 UTC")


def liveness_router() -> APIRouter:
    """``GET /alive`` → ``{"status": "ok"}`` and ``GET /ping`` → ``{"status": "pong"}``, with ``ts``."""
    router = APIRouter(tags=["health"])

    @router.get("/alive")
    async def alive() -> Liveness:
        """Liveness: the process answers (compose health checks)."""
        return Liveness(status="ok", ts=utcnow_iso())

    @router.get("/ping")
    async def ping() -> Liveness:
        """Liveness: the process answers."""
        return Liveness(status="pong", ts=utcnow_iso())

    return router
