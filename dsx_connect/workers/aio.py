"""One event loop and one aiohttp session per worker process (PERFORMANCE.md: prefork + a loop each)."""

from __future__ import annotations

import asyncio
import os
import ssl
from collections.abc import Coroutine
from typing import Any, TypeVar

import aiohttp

T = TypeVar("T")

_state: dict[str, Any] = {"pid": None, "loop": None, "session": None}


def _loop() -> asyncio.AbstractEventLoop:
    if _state["pid"] != os.getpid() or _state["loop"] is None or _state["loop"].is_closed():
        try:
            import uvloop

            loop: asyncio.AbstractEventLoop = uvloop.new_event_loop()
        except ImportError:  # pragma: no cover - uvloop ships with uvicorn[standard]
            loop = asyncio.new_event_loop()
        _state.update(pid=os.getpid(), loop=loop, session=None)
    return _state["loop"]


def run(coro: Coroutine[Any, Any, T]) -> T:
    """Run ``coro`` to completion on this process's loop."""
    return _loop().run_until_complete(coro)


def session(verify: bool | str = True) -> aiohttp.ClientSession:
    """This process's pooled aiohttp session (created inside the running loop)."""
    current = _state["session"]
    if current is None or current.closed:
        if isinstance(verify, str):
            ssl_ctx: ssl.SSLContext | bool = ssl.create_default_context(cafile=verify)
        else:
            ssl_ctx = bool(verify)
        connector = aiohttp.TCPConnector(limit=128, limit_per_host=64, ssl=ssl_ctx, keepalive_timeout=30)
        current = aiohttp.ClientSession(connector=connector, auto_decompress=False)
        _state["session"] = current
    return current
