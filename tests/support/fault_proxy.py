"""A fault-injecting HTTP proxy for failure tests: sits in front of a real service and, on command,
answers an error status, hangs, or drops the connection for matching requests.

    FAULT_UPSTREAM=http://127.0.0.1:5000 uvicorn tests.support.fault_proxy:app --port P
    POST /__fault {"mode": "status", "status": 503, "method": "PUT", "path_contains": "item_action"}
    POST /__fault {"mode": "pass"}

Modes: ``pass`` (forward), ``status`` (answer ``status`` with a short body), ``hang`` (never answer
until the mode changes), ``delay`` (forward after ``delay_s`` seconds: a slow service). Requests not matching ``method`` / ``path_contains`` are always forwarded,
and so are the first ``pass_first`` matching ones after the mode is set (a fault that lands after exactly that much work).
``GET /__fault`` reports the mode and counts (``paths``: forwarded requests per path). A service that is down altogether is the proxy
process stopped (connections refused) and started again on the same port.
"""

from __future__ import annotations

import asyncio
import os
from typing import Any

import httpx
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

UPSTREAM = os.environ.get("FAULT_UPSTREAM", "http://127.0.0.1:1")
_state: dict[str, Any] = {
    "mode": "pass",
    "status": 503,
    "method": None,
    "path_contains": None,
    "faulted": 0,
    "passed": 0,
    "delay_s": 0.0,
    "pass_first": 0,
    "paths": {},
}
_client: httpx.AsyncClient | None = None
_changed = asyncio.Event()


def _matches(request: Request) -> bool:
    method, part = _state["method"], _state["path_contains"]
    return (method is None or request.method == method) and (part is None or part in request.url.path)


async def control(request: Request) -> Response:
    if request.method == "POST":
        body = await request.json()
        _state.update(
            {
                "mode": "pass",
                "status": 503,
                "method": None,
                "path_contains": None,
                "delay_s": 0.0,
                "pass_first": 0,
            }
            | body
        )
        _changed.set()
    return JSONResponse(_state)


async def proxy(request: Request) -> Response:
    global _client
    faulted = _matches(request)
    if faulted and _state["mode"] != "pass" and _state["pass_first"] > 0:
        _state["pass_first"] -= 1
        faulted = False
    if faulted and _state["mode"] == "delay":
        await asyncio.sleep(float(_state["delay_s"]))
    while faulted and _state["mode"] not in ("pass", "delay") and _matches(request):
        mode = _state["mode"]
        if mode == "status":
            _state["faulted"] += 1
            return JSONResponse(
                {"status": "error", "message": "injected fault"}, status_code=_state["status"]
            )
        _state["faulted"] += 1  # hang until the mode changes
        _changed.clear()
        await _changed.wait()
    _client = _client or httpx.AsyncClient(timeout=None, limits=httpx.Limits(max_connections=200))
    upstream = await _client.request(
        request.method,
        UPSTREAM + request.url.path,
        params=request.query_params,
        content=await request.body(),
        headers=[(k, v) for k, v in request.headers.items() if k.lower() not in ("host", "content-length")],
    )
    _state["passed"] += 1
    _state["paths"][request.url.path] = _state["paths"].get(request.url.path, 0) + 1
    headers = {
        k: v
        for k, v in upstream.headers.items()
        if k.lower() not in ("content-length", "transfer-encoding", "content-encoding", "connection")
    }
    return Response(upstream.content, status_code=upstream.status_code, headers=headers)


app = Starlette(
    routes=[
        Route("/__fault", control, methods=["GET", "POST"]),
        Route("/{path:path}", proxy, methods=["GET", "POST", "PUT", "DELETE", "PATCH"]),
    ]
)
