"""``create_connector_app``: a FastAPI app serving one connector (SPEC §1, §5)."""

from __future__ import annotations

import random
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import httpx
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from shared.body_limit import BodyLimitMiddleware
from shared.connector.base import Connector
from shared.connector.responses import error_response
from shared.connector.routes import connector_router, fast_read_route, health_router
from shared.connector.runtime import ConnectorRuntime
from shared.connector.security import (
    CoreAuth,
    CoreRequestGuard,
    RequestVerifier,
    core_auth,
    verify_core_request,
)
from shared.errors import DsxError
from shared.health import liveness_router
from shared.logging import configure_logging, request_id_var


class RequestIdMiddleware:
    """Tags each request's logs with ``X-Request-Id`` (taken from the caller or made up) and echoes it."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        incoming = dict(scope["headers"]).get(b"x-request-id", b"").decode("latin-1")[:128]
        request_id = incoming or f"{random.getrandbits(128):032x}"  # not a secret; uuid4 costs a syscall
        token = request_id_var.set(request_id)

        async def send_with_id(message: Message) -> None:
            if message["type"] == "http.response.start":
                message.setdefault("headers", []).append((b"x-request-id", request_id.encode("latin-1")))
            await send(message)

        try:
            await self.app(scope, receive, send_with_id)
        finally:
            request_id_var.reset(token)


def create_connector_app(
    connector: Connector,
    *,
    verifier: RequestVerifier = verify_core_request,
    auth: httpx.Auth | None = None,
    transport: httpx.AsyncBaseTransport | None = None,
) -> FastAPI:
    """The connector's app: SPEC §5 routes under ``/{name}``, health at the root and the prefix.

    Its lifespan registers with the core and re-registers every ``HEARTBEAT_INTERVAL_S``, runs the
    watcher when ``MONITOR`` is on, and on shutdown stops everything and unregisters.
    ``verifier`` (incoming) and ``auth`` (outgoing, default ``security.core_auth``) are the
    DSX-HMAC seams; ``transport`` lets a test replace the network to the core.
    """
    settings = connector.settings
    auth = auth or core_auth(settings)
    runtime = ConnectorRuntime(connector, auth=auth, transport=transport)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        configure_logging(connector.settings.name, connector.settings.log_level)
        await runtime.start()
        try:
            yield
        finally:
            await runtime.stop()

    app = FastAPI(
        title=settings.display_name or settings.name,
        version=connector.version,
        lifespan=lifespan,
        docs_url=f"{settings.route_prefix}/docs",
        openapi_url=f"{settings.route_prefix}/openapi.json",
        # no OpenTelemetry configured: skip FastAPI's per-request check for providers
        telemetry={"tracing": False, "metrics": False, "logs": False},
    )
    app.state.runtime = runtime
    app.state.core_guard = CoreRequestGuard(
        auth.credentials if isinstance(auth, CoreAuth) else None,
        enabled=settings.auth.enabled,
        on_unknown_key=runtime.nudge_registration,
    )
    app.add_middleware(BodyLimitMiddleware, max_bytes=settings.max_request_bytes)
    app.add_middleware(RequestIdMiddleware)
    app.include_router(connector_router(settings.route_prefix, verifier))
    app.router.routes.insert(0, fast_read_route(settings.route_prefix, verifier))  # hot path, matched first
    app.include_router(liveness_router())
    app.include_router(health_router())
    app.include_router(health_router(), prefix=settings.route_prefix)

    @app.exception_handler(DsxError)
    async def handle_dsx_error(request: Request, exc: DsxError) -> JSONResponse:
        return error_response(exc)

    @app.exception_handler(RequestValidationError)
    async def handle_validation_error(request: Request, exc: RequestValidationError) -> JSONResponse:
        problems = [f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors()]
        return JSONResponse(
            {
                "status": "error",
                "message": "; ".join(problems) or "invalid request",
                "error": "invalid_request",
            },
            status_code=422,
        )

    return app
