"""Liveness routes every service answers (SPEC §1): ``/alive`` and ``/ping``, touching no dependency."""

from __future__ import annotations

from fastapi import APIRouter

from shared.models import utcnow_iso


def liveness_router() -> APIRouter:
    """``GET /alive`` → ``{"status": "ok"}`` and ``GET /ping`` → ``{"status": "pong"}``, with ``ts``."""
    router = APIRouter(tags=["health"])

    @router.get("/alive")
    async def alive() -> dict[str, str]:
        """Liveness: the process answers (compose health checks)."""
        return {"status": "ok", "ts": utcnow_iso()}

    @router.get("/ping")
    async def ping() -> dict[str, str]:
        """Liveness: the process answers."""
        return {"status": "pong", "ts": utcnow_iso()}

    return router
