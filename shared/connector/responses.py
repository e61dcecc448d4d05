"""HTTP answers of the connector routes: item bytes (the throughput hot path) and errors."""

from __future__ import annotations

import inspect
import logging
from typing import Any

import anyio
from fastapi.responses import JSONResponse, Response, StreamingResponse
from starlette.types import Receive, Scope, Send

from shared.connector.base import ItemContent
from shared.connector.errors import error_kind, http_status
from shared.errors import DsxError
from shared.item_version import ITEM_VERSION_HEADER, MAX_VERSION_CHARS

log = logging.getLogger(__name__)

OCTET_STREAM = "application/octet-stream"


class ClosingStreamingResponse(StreamingResponse):
    """A ``StreamingResponse`` that closes its source when the answer ends, whatever ends it: the
    last chunk, a client that went away (Starlette raises ``ClientDisconnect``, or cancels the
    stream before ASGI 2.4), an error. Starlette leaves the iterator as it is, in a reference cycle
    through the exception's traceback: a local file's descriptor then stayed open until a full
    garbage collection, which ``shared.gc_tuning`` makes rare."""

    def __init__(self, source: Any, **kwargs: Any) -> None:
        super().__init__(source, **kwargs)
        self.source = source

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            await super().__call__(scope, receive, send)
        finally:
            await close_source(self.source)


async def content_response(content: ItemContent) -> Response:
    """Bytes for ``POST /read_file``: small items in one plain response, large ones streamed.

    Memory stays bounded by ``STREAM_CHUNK_BYTES`` per request whatever the item's size. The
    item's version, when the storage has one, travels in ``X-Item-Version``.
    """
    version = wire_version(content.version)
    headers = {ITEM_VERSION_HEADER: version} if version is not None else None
    if content.data is not None:
        return Response(content.data, media_type=OCTET_STREAM, headers=headers)
    if content.chunks is not None:
        if content.exact and content.size is not None:
            headers = {**(headers or {}), "Content-Length": str(content.size)}
        return ClosingStreamingResponse(content.chunks, media_type=OCTET_STREAM, headers=headers)
    raise ValueError("ItemContent has neither data nor chunks")


def wire_version(version: str | None) -> str | None:
    """``version`` as the header may carry it (printable ASCII, at most 256 characters), else None."""
    if not version or len(version) > MAX_VERSION_CHARS or not version.isascii() or not version.isprintable():
        return None
    return version


def error_response(err: DsxError, **extra: Any) -> JSONResponse:
    """A StatusResponse-shaped JSON error (``status: "error"``) with the matching HTTP code."""
    return JSONResponse(error_body(err, **extra), status_code=http_status(err))


def error_body(err: DsxError, **extra: Any) -> dict[str, Any]:
    """The JSON body of :func:`error_response`."""
    body: dict[str, Any] = {
        "status": "error",
        "message": err.message,
        "description": None,
        "id": None,
        "preview": None,
        "error": error_kind(err),
    }
    body.update(extra)
    return body


async def small_item_bytes(content: ItemContent, limit: int) -> bytes | None:
    """The whole item when it is at most ``limit`` bytes, else None (read nothing more of it).

    A streamed item's source is closed before this returns, whatever happened."""
    if content.chunks is None:
        if content.data is None:
            raise ValueError("ItemContent has neither data nor chunks")
        return content.data if len(content.data) <= limit else None
    try:
        if content.size is not None and content.size > limit:
            return None
        parts: list[bytes] = []
        size = 0
        async for chunk in content.chunks:
            size += len(chunk)
            if size > limit:
                return None
            parts.append(chunk)
        return b"".join(parts)
    finally:
        await close_source(content.chunks)


async def close_source(source: Any) -> None:
    """Close a stream's source: ``aclose()`` (async iterators, async generators) or else ``close()``
    (awaited when it is a coroutine). Shielded, so that it runs in a cancelled task too; a failure
    is logged, never raised over what ended the stream."""
    closer = getattr(source, "aclose", None) or getattr(source, "close", None)
    if not callable(closer):
        return
    with anyio.CancelScope(shield=True):
        try:
            result = closer()
            if inspect.isawaitable(result):
                await result
        except Exception as exc:
            log.warning("closing a streamed item's source failed", extra={"error": repr(exc)})
