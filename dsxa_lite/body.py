"""Receiving a scan body: hash it while it streams in, keep it in memory while small, spool it to
an unnamed temp file past a threshold, and stop keeping it (but keep hashing) past the size limit.

Memory stays bounded whatever the body size: at most ``spool_threshold`` bytes in memory, plus
one flush batch (``SPOOL_FLUSH_BYTES``) on the way to disk.
"""

from __future__ import annotations

import binascii
import hashlib
import tempfile
from collections.abc import AsyncIterable, AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

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


async def receive_body(
    chunks: AsyncIterable[bytes],
    *,
    max_size: int,
    spool_threshold: int,
    spool_dir: Path | None = None,
) -> ReceivedBody:
    """Consume ``chunks`` into a :class:`ReceivedBody` (see the module docstring)."""
    digest = hashlib.sha256()
    size = 0
    head = b""
    parts: list[bytes] = []
    pending_size = 0
    spool: BinaryIO | None = None
    too_large = False
    try:
        async for chunk in chunks:
            if not chunk:
                continue
            digest.update(chunk)
            size += len(chunk)
            if len(head) < HEAD_BYTES:
                head += chunk[: HEAD_BYTES - len(head)]
            if too_large:
                continue
            if size > max_size:
                too_large = True
                parts = []
                if spool is not None:
                    spool.close()
                    spool = None
                continue
            parts.append(chunk)
            if spool is None:
                if size <= spool_threshold:
                    continue
                spool = await anyio.to_thread.run_sync(_open_spool, spool_dir)
                pending_size = size
            else:
                pending_size += len(chunk)
            if pending_size >= SPOOL_FLUSH_BYTES:
                await anyio.to_thread.run_sync(_write, spool, parts)
                parts = []
                pending_size = 0
        if spool is not None and parts:
            await anyio.to_thread.run_sync(_write, spool, parts)
            parts = []
    except BaseException:
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
