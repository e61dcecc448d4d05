"""dsxa_lite's app in this process, called through httpx's ASGI transport (its client is 127.0.0.1)."""

from __future__ import annotations

from typing import Any

import anyio
import httpx

from dsxa_lite.settings import DsxaLiteSettings


def run_against(settings: DsxaLiteSettings, steps: Any) -> Any:
    """``await steps(client)`` with a client of an app built from ``settings`` (on loopback)."""
    from dsxa_lite.app import create_app

    async def call() -> Any:
        app = create_app(settings)
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://scanner") as client:
            return await steps(client)

    return anyio.run(call)
