"""A cap on request bodies: 413 with a message naming the limit, before or while the body arrives."""

from __future__ import annotations

import json
from collections.abc import Mapping

from fastapi import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send


class BodyTooLarge(HTTPException):
    """Raised from ``receive`` when a streamed body passes the limit (answered 413 by the app)."""

    def __init__(self, limit: int) -> None:
        super().__init__(413, f"request body larger than the limit of {limit} bytes")


def too_large_body(limit: int, size: int | None = None) -> bytes:
    said = f"request body of {size} bytes" if size is not None else "request body"
    message = f"{said} is larger than the limit of {limit} bytes"
    return json.dumps({"status": "error", "message": message, "error": "body_too_large"}).encode()


async def send_too_large(send: Send, limit: int, size: int | None = None) -> None:
    body = too_large_body(limit, size)
    await send(
        {
            "type": "http.response.start",
            "status": 413,
            "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())],
        }
    )
    await send({"type": "http.response.body", "body": body})


class BodyLimitMiddleware:
    """Refuses a declared ``Content-Length`` over ``max_bytes`` at once, and a chunked body as soon as
    it passes it (``BodyTooLarge``, an ``HTTPException(413)`` the app answers as JSON).

    ``path_limits`` sets another limit for the paths it names (say, routes whose bodies are small JSON)."""

    def __init__(self, app: ASGIApp, max_bytes: int, path_limits: Mapping[str, int] | None = None) -> None:
        self.app = app
        self.max_bytes = max_bytes
        self.path_limits = dict(path_limits or {})

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        limit = self.path_limits.get(scope["path"], self.max_bytes)
        for name, value in scope["headers"]:
            if name == b"content-length":
                try:
                    size = int(value)
                except ValueError:
                    size = -1
                if size > limit:
                    await send_too_large(send, limit, size)
                    return
        received = 0
        started = False

        async def limited_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    raise BodyTooLarge(limit)
            return message

        async def tracking_send(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, limited_receive, tracking_send)
        except BodyTooLarge:
            if started:
                raise
            await send_too_large(send, limit)
