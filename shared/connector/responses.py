"""HTTP answers of the connector routes: item bytes (the throughput hot path) and errors."""

from __future__ import annotations

from typing import Any

from fastapi.responses import JSONResponse, Response, StreamingResponse

from shared.connector.base import ItemContent
from shared.connector.errors import error_kind, http_status
from shared.errors import DsxError
from shared.item_version import ITEM_VERSION_HEADER, MAX_VERSION_CHARS

OCTET_STREAM = "application/octet-stream"


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
        return StreamingResponse(content.chunks, media_type=OCTET_STREAM, headers=headers)
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
    """The whole item when it is at most ``limit`` bytes, else None (read nothing more of it)."""
    if content.size is not None and content.size > limit:
        if content.chunks is not None:
            await _close(content.chunks)
        return None
    if content.data is not None:
        return content.data if len(content.data) <= limit else None
    if content.chunks is not None:
        parts: list[bytes] = []
        size = 0
        async for chunk in content.chunks:
            size += len(chunk)
            if size > limit:
                await _close(content.chunks)
                return None
            parts.append(chunk)
        return b"".join(parts)
    raise ValueError("ItemContent has neither data nor chunks")


async def _close(chunks: Any) -> None:
    aclose = getattr(chunks, "aclose", None)
    if aclose is not None:
        await aclose()
