"""ASGI middleware: a request id on every request and answer, and JSON as the default body type."""

from __future__ import annotations

import logging
import uuid

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from dsx_connect.api.errors import internal_error
from shared.logging import request_id_var

log = logging.getLogger(__name__)

_BODY_METHODS = {b"POST", b"PUT", b"PATCH"}

#: on every answer: no MIME sniffing, no Referer with job ids or locations, no framing (clickjacking)
_SECURITY_HEADERS = [
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"no-referrer"),
    (b"x-frame-options", b"DENY"),
]
#: every page (the dashboard, /docs) loads its own files only and builds no markup from strings
_CSP = (
    b"content-security-policy",
    b"default-src 'self'; img-src 'self' data:; object-src 'none'; base-uri 'none'; "
    b"frame-ancestors 'none'; form-action 'self'",
)
# over HTTPS only (a plain-HTTP answer cannot set it): browsers then refuse to reach the dashboard
# over plain HTTP for a year, so a network attacker cannot strip TLS from an operator's session
_HSTS = (b"strict-transport-security", b"max-age=31536000")


class RequestContextMiddleware:
    """Sets ``X-Request-ID`` (taken from the caller when given), adds the security headers to every
    answer, and treats a body without a Content-Type header as JSON, as DSX-Connect 1.x connectors
    expect (SPEC §4).

    It also answers an unhandled exception (500, JSON with the request id, never a stack trace):
    Starlette runs an ``Exception`` handler in its outermost middleware, outside this one, where the
    answer got neither the request id nor the security headers."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = list(scope["headers"])
        content_type = next((v for n, v in headers if n == b"content-type"), b"").strip()
        request_id = next((v.decode("latin-1") for n, v in headers if n == b"x-request-id"), None)
        request_id = (request_id or uuid.uuid4().hex)[:64]
        if scope["method"].encode() in _BODY_METHODS and not content_type:
            headers = [(n, v) for n, v in headers if n != b"content-type"]
            headers.append((b"content-type", b"application/json"))
            scope = dict(scope, headers=headers)
        token = request_id_var.set(request_id)
        added = [(b"x-request-id", request_id.encode("latin-1")), *_SECURITY_HEADERS, _CSP]
        if scope.get("scheme") == "https":
            added.append(_HSTS)

        started = False

        async def send_with_id(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
                message.setdefault("headers", [])
                message["headers"] = [*message["headers"], *added]
            await send(message)

        try:
            await self.app(scope, receive, send_with_id)
        except Exception:
            log.exception("unhandled error")  # with the request id: the context is still set
            if started:  # part of an answer went out: nothing can replace it; the server ends the connection
                raise
            await internal_error(request_id)(scope, receive, send_with_id)
        finally:
            request_id_var.reset(token)
