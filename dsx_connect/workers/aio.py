"""One event loop and one pooled hot-path transport per worker process (PERFORMANCE.md: prefork + a loop each)."""

from __future__ import annotations

import asyncio
import os
from collections.abc import Coroutine
from typing import Any, TypeVar

from dsx_connect.workers.transport import ClientName, ClosableTransport, make_transport

T = TypeVar("T")

_state: dict[str, Any] = {"pid": None, "loop": None, "pool": None}


def _loop() -> asyncio.AbstractEventLoop:
    if _state["pid"] != os.getpid() or _state["loop"] is None or _state["loop"].is_closed():
        try:
            import uvloop

            loop: asyncio.AbstractEventLoop = uvloop.new_event_loop()
        except ImportError:  # pragma: no cover - uvloop ships with uvicorn[standard]
            loop = asyncio.new_event_loop()
        _state.update(pid=os.getpid(), loop=loop, pool=None)
    return _state["loop"]


def run(coro: Coroutine[Any, Any, T]) -> T:
    """Run ``coro`` to completion on this process's loop."""
    return _loop().run_until_complete(coro)


def pool(client: ClientName = "http1") -> ClosableTransport:
    """This process's keep-alive connections through the ``client`` transport
    (``DSXCONNECT_SCANNER__CLIENT``; TLS settings are per request, see ``Transport.request``)."""
    current = _state["pool"]
    if current is None or current.closed or _state.get("client") != client:
        if current is not None and not current.closed:
            current.close()
        current = make_transport(client)
        _state.update(pool=current, client=client)
    return current
