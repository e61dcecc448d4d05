"""An ASGI app served by uvicorn in a thread on a free port, for the block's duration."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import uvicorn

from tests.support.procs import free_port, wait_for


@contextmanager
def serving(app: Any, port: int | None = None, name: str = "app") -> Iterator[str]:
    """Serve ``app`` (no lifespan: nothing registers anywhere); yields its ``http://127.0.0.1:port``."""
    port = port or free_port()
    server = uvicorn.Server(
        uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="off")
    )
    thread = threading.Thread(target=server.run, name=f"{name}-{port}", daemon=True)
    thread.start()
    try:
        wait_for(lambda: server.started or not thread.is_alive(), timeout=15, what=name)
        if not server.started:
            raise RuntimeError(f"{name} did not start on port {port}")
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=15)
