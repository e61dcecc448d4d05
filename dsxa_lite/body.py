"""Receiving a scan body: hash it while it streams in, keep it in memory while small, spool it to
an unnamed temp file past a threshold, and stop keeping it (but keep hashing) past the size limit.

Memory stays bounded whatever the body size: at most ``spool_threshold`` bytes in memory, plus
one flush batch (``SPOOL_FLUSH_BYTES``) on the way to disk.
"""

from __future__ import annotations

import asyncio
import binascii
import hashlib
import tempfile
from collections.abc import AsyncIterable, AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

import anyio.to_thread

from dsxa_lite.engines import HEAD_BYTES

SPOOL_FLUSH_BYTES = 1024 * 1024


class BadBody(ValueError):
    """The body cannot be decoded (e.g. invalid base64): a 400, not a verdict."""


@dataclass(slots=True)
class ReceivedBody:
    """A body as received: its hash and size, first bytes, and content in memory or on disk.

    ``data`` is set for bodies kept in memory, ``spool`` for bodies on disk; neither is set
    when ``too_large`` (the body went past the size limit and was only hashed and counted).
    """

    sha256: str
    size: int
    head: bytes
    data: bytes | None = None
    spool: BinaryIO | None = None
    too_large: bool = False

    def close(self) -> None:
        """Release the spool file (it has no name, so closing it frees the disk space)."""
        if self.spool is not None:
            self.spool.close()
            self.spool = None


def _open_spool(spool_dir: Path | None) -> BinaryIO:
    # O_TMPFILE where the OS has it: nothing is left behind even if the process dies
    return tempfile.TemporaryFile(prefix="dsxa-lite-", dir=spool_dir)


def _write(spool: BinaryIO, parts: list[bytes]) -> None:
    spool.writelines(parts)
    spool.flush()


def _hash_and_write(digest: Any, spool: BinaryIO, parts: list[bytes]) -> None:
    # In a worker thread: hashlib and the file write release the GIL, so the event loop goes on
    # receiving the next batch meanwhile (a large body's hashing no longer holds up its transfer).
    for part in parts:
        digest.update(part)
    _write(spool, parts)


async def receive_body(
    chunks: AsyncIterable[bytes],
    *,
    max_size: int,
    spool_threshold: int,
    spool_dir: Path | None = None,
) -> ReceivedBody:
    """Consume ``chunks`` into a :class:`ReceivedBody` (see the module docstring).

    Once a body spools, each flush batch is hashed and written in a worker thread while the next
    batch arrives (at most one batch in the thread and one arriving: memory stays bounded).
    """
    loop = asyncio.get_running_loop()
    digest = hashlib.sha256()
    size = 0
    head = b""
    parts: list[bytes] = []
    pending_size = 0
    spool: BinaryIO | None = None
    flushing: asyncio.Future[None] | None = None  # the batch in the worker thread
    too_large = False
    try:
        async for chunk in chunks:
            if not chunk:
                continue
            size += len(chunk)
            if len(head) < HEAD_BYTES:
                head += chunk[: HEAD_BYTES - len(head)]
            if too_large:
                digest.update(chunk)
                continue
            if size > max_size:
                too_large = True
                if flushing is not None:
                    await flushing
                    flushing = None
                for part in parts:  # not hashed yet
                    digest.update(part)
                digest.update(chunk)
                parts = []
                if spool is not None:
                    spool.close()
                    spool = None
                continue
            parts.append(chunk)
            if spool is None:
                digest.update(chunk)
                if size <= spool_threshold:
                    continue
                spool = await anyio.to_thread.run_sync(_open_spool, spool_dir)
                await anyio.to_thread.run_sync(_write, spool, parts)  # hashed already
                parts = []
                pending_size = 0
                continue
            pending_size += len(chunk)
            if pending_size >= SPOOL_FLUSH_BYTES:
                if flushing is not None:
                    await flushing
                flushing = loop.run_in_executor(None, _hash_and_write, digest, spool, parts)
                parts = []
                pending_size = 0
        if flushing is not None:
            await flushing
            flushing = None
        if spool is not None and parts:
            await anyio.to_thread.run_sync(_hash_and_write, digest, spool, parts)
            parts = []
    except BaseException:
        if flushing is not None:  # let the thread finish with the spool before it is closed
            await asyncio.shield(asyncio.wait([flushing]))
        if spool is not None:
            spool.close()
        raise
    data = None
    if spool is None and not too_large:
        data = parts[0] if len(parts) == 1 else b"".join(parts)
    return ReceivedBody(digest.hexdigest(), size, head, data, spool, too_large)


_BASE64_WHITESPACE = b" \t\r\n\x0b\x0c"


def _decode_base64(piece: bytes) -> bytes:
    try:
        return binascii.a2b_base64(piece, strict_mode=True)
    except binascii.Error as exc:
        raise BadBody(f"invalid base64: {exc}") from None


async def decode_base64(chunks: AsyncIterable[bytes]) -> AsyncIterator[bytes]:
    """Decode a streamed base64 text (RFC 4648 alphabet; whitespace and line breaks ignored;
    missing final padding tolerated) into decoded chunks; raise :class:`BadBody` on bad input.
    """
    rest = b""
    padded = False
    async for chunk in chunks:
        text = chunk.translate(None, _BASE64_WHITESPACE)
        if not text:
            continue
        if padded:
            raise BadBody("invalid base64: data after the padding")
        text = rest + text
        cut = len(text) - len(text) % 4
        rest = text[cut:]
        if cut:
            piece = text[:cut]
            if piece.endswith(b"="):
                padded = True
                if rest:
                    raise BadBody("invalid base64: data after the padding")
            yield _decode_base64(piece)
    if rest:
        if len(rest) == 1:
            raise BadBody("invalid base64: truncated input")
        yield _decode_base64(rest + b"=" * (4 - len(rest)))
