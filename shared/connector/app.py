"""``create_connector_app``: a FastAPI app serving one connector (SPEC §1, §5)."""

from __future__ import annotations

import random
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager

import httpx
from fastapi import FastAPI, HTTPException, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from shared.api_docs import install_api_docs
from shared.body_limit import BodyLimitMiddleware, send_too_large
from shared.connector.base import Connector
from shared.connector.responses import error_response
from shared.connector.routes import connector_router, health_router, read_file_endpoint, read_files_endpoint
from shared.connector.runtime import ConnectorRuntime
from shared.connector.security import (
    CoreAuth,
    CoreRequestGuard,
    RequestVerifier,
    core_auth,
    verify_core_request,
)
from shared.connector.webhook_auth import WebhookGate
from shared.errors import DsxError
from shared.gc_tuning import tune_gc
from shared.health import liveness_router
from shared.logging import configure_logging, request_id_var


def request_id_of(incoming: bytes) -> str:
    """The caller's ``X-Request-Id`` (at most 128 characters), or a new one when it sent none."""
    # not a secret, so no uuid4: that costs a syscall
    return incoming.decode("latin-1")[:128] or f"{random.getrandbits(128):032x}"


class RequestIdMiddleware:
    """Tags each request's logs with ``X-Request-Id`` (taken from the caller or made up) and echoes it."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        request_id = request_id_of(dict(scope["headers"]).get(b"x-request-id", b""))
        token = request_id_var.set(request_id)

        async def send_with_id(message: Message) -> None:
            if message["type"] == "http.response.start":
                message.setdefault("headers", []).append((b"x-request-id", request_id.encode("latin-1")))
            await send(message)

        try:
            await self.app(scope, receive, send_with_id)
        finally:
            request_id_var.reset(token)


#: the body limit of the core's calls (``read_file``, ``read_files``, ``item_action``, ``config``, …):
#: small JSON. The largest a core sends is ``read_files``' 32 items whose location and metainfo
#: have 4096 characters each (``ScanRequest``'s maximum), escaped as JSON escapes characters outside
#: the BMP (``\ud83d\ude00``, 12 bytes a character): 3.1 MB. ``MAX_REQUEST_BYTES`` (16 MiB) stays the
#: limit of webhook events, and a smaller ``MAX_REQUEST_BYTES`` wins.
CORE_CALL_MAX_BYTES = 4 << 20


class HotPathDispatch:
    """Serves the per-item read routes (``read_file``, ``read_files``) around FastAPI's middleware
    stack and router, and refuses unsigned calls to the core's routes before their body is read.

    Those calls are made once per scanned item (or group of small items); the stack and routing
    cost a quarter of one (docs/performance.md). The hot path does itself, in one pass, what it
    needs of them: the request id of its logs (echoed as ``X-Request-Id``) and the body limit (413).

    ``guard`` checks the DSX-HMAC header of every request to ``signed_paths`` (the routes the core
    calls, hot or not) before anything reads the body: a missing or malformed header, a stale
    timestamp or an unknown key id is answered 401 at once, so that a caller without the key never
    makes the connector hold its body (the signature over the body and the nonce are checked by
    the route's verifier once the body is in).
    """

    def __init__(
        self,
        stack: ASGIApp,
        endpoints: dict[str, Callable[[Request], Awaitable[Response]]],
        max_bytes: int,
        *,
        signed_paths: frozenset[str] = frozenset(),
        guard: CoreRequestGuard | None = None,
    ) -> None:
        self.stack = stack
        self.endpoints = endpoints
        self.max_bytes = max_bytes
        self.signed_paths = signed_paths if guard is not None and guard.enabled else frozenset()
        self.guard = guard

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.stack(scope, receive, send)
            return
        path = scope["path"]
        if path in self.signed_paths and not await self._signed(scope, receive, send):
            return
        endpoint = self.endpoints.get(path)
        if endpoint is None or scope["method"] != "POST":
            await self.stack(scope, receive, send)
            return
        incoming = b""
        for name, value in scope["headers"]:
            if name == b"content-length":
                size = int(value) if value.isdigit() else -1
                if size > self.max_bytes:
                    await send_too_large(send, self.max_bytes, size)
                    return
            elif name == b"x-request-id":
                incoming = value
        body = await _read_body(receive, self.max_bytes)
        if body is None:
            await send_too_large(send, self.max_bytes)
            return

        async def replay() -> Message:
            return {"type": "http.request", "body": body, "more_body": False}

        request_id = request_id_of(incoming)
        token = request_id_var.set(request_id)
        try:
            response = await endpoint(Request(scope, replay))
            response.raw_headers.append((b"x-request-id", request_id.encode("latin-1")))
            await response(scope, receive, send)
        finally:
            request_id_var.reset(token)

    async def _signed(self, scope: Scope, receive: Receive, send: Send) -> bool:
        """True when the DSX-HMAC header passes the checks that need no body; else answers 401."""
        assert self.guard is not None
        authorization: str | None = None
        incoming = b""
        for name, value in scope["headers"]:
            if name == b"authorization":
                authorization = value.decode("latin-1")
            elif name == b"x-request-id":
                incoming = value
        request_id = request_id_of(incoming)
        token = request_id_var.set(request_id)
        try:
            self.guard.check_headers(authorization)
            return True
        except HTTPException as exc:
            headers = {**(exc.headers or {}), "X-Request-Id": request_id}
            # the body is never read: tell the client not to send another request on this connection
            headers["Connection"] = "close"
            refusal = JSONResponse({"detail": exc.detail}, status_code=exc.status_code, headers=headers)
            await refusal(scope, receive, send)
            return False
        finally:
            request_id_var.reset(token)


async def _read_body(receive: Receive, limit: int) -> bytes | None:
    """The whole request body, or None past ``limit`` bytes."""
    parts: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] != "http.request":
            return b"".join(parts)  # the client went away; the endpoint's answer will not be read
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            return None
        parts.append(chunk)
        if not message.get("more_body", False):
            return b"".join(parts)


class ConnectorApp(FastAPI):
    """FastAPI with the read hot paths dispatched, and the core's calls' DSX-HMAC headers checked,
    before its middleware stack."""

    hot_paths: dict[str, Callable[[Request], Awaitable[Response]]] | None = None
    hot_path_max_bytes: int = 16 << 20
    #: the routes the core calls, whose DSX-HMAC header ``header_guard`` checks before their body
    signed_paths: frozenset[str] = frozenset()
    header_guard: CoreRequestGuard | None = None

    def build_middleware_stack(self) -> ASGIApp:
        stack = super().build_middleware_stack()
        if not self.hot_paths and not (self.signed_paths and self.header_guard):
            return stack
        return HotPathDispatch(
            stack,
            self.hot_paths or {},
            self.hot_path_max_bytes,
            signed_paths=self.signed_paths,
            guard=self.header_guard,
        )


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
        tune_gc()
        try:
            yield
        finally:
            await runtime.stop()

    app = ConnectorApp(
        title=settings.display_name or settings.name,
        version=connector.version,
        lifespan=lifespan,
        docs_url=None,  # served from this package, not a CDN (shared/api_docs.py)
        redoc_url=None,
        openapi_url=f"{settings.route_prefix}/openapi.json",
        # no OpenTelemetry configured: skip FastAPI's per-request check for providers
        telemetry={"tracing": False, "metrics": False, "logs": False},
    )
    install_api_docs(app, f"{settings.route_prefix}/docs")
    app.state.runtime = runtime
    app.state.webhooks = WebhookGate(connector)  # verifies /webhook/event senders, counts refusals
    app.state.core_guard = CoreRequestGuard(
        auth.credentials if isinstance(auth, CoreAuth) else None,
        enabled=settings.auth.enabled,
        on_unknown_key=runtime.nudge_registration,
        nonce_capacity=settings.auth.nonce_capacity,
    )
    signed_paths: set[str] = set()
    app.include_router(connector_router(settings.route_prefix, verifier, signed_paths))
    app.hot_paths = {
        f"{settings.route_prefix}/read_file": read_file_endpoint(verifier),
        f"{settings.route_prefix}/read_files": read_files_endpoint(verifier),
    }
    core_call_max_bytes = min(settings.max_request_bytes, CORE_CALL_MAX_BYTES)
    app.signed_paths = frozenset(signed_paths | set(app.hot_paths))
    # the header checks before the body are those of the DSX-HMAC verifier; another verifier (a
    # test's seam) is left to decide alone
    app.header_guard = app.state.core_guard if verifier is verify_core_request else None
    app.hot_path_max_bytes = core_call_max_bytes
    app.add_middleware(
        BodyLimitMiddleware,
        max_bytes=settings.max_request_bytes,
        path_limits=dict.fromkeys(app.signed_paths, core_call_max_bytes),
    )
    app.add_middleware(RequestIdMiddleware)
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
