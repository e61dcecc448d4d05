"""Receiving a scan body: hash it while it streams in, keep it in memory while small, spool it to
an unnamed temp file past a threshold (or, when the caller offers one, hand it to a scan that
takes it as it arrives: :mod:`dsxa_lite.streamed`), and stop keeping it (but keep hashing) past
the size limit.

Memory stays bounded whatever the body size: at most ``spool_threshold`` bytes in memory, plus
one flush batch (``SPOOL_FLUSH_BYTES``) on the way to disk, or, streamed, ``STREAM_SLACK_BYTES``
received while the scan holds a window.
"""

from __future__ import annotations

import asyncio
import binascii
import functools
import hashlib
import tempfile
from collections.abc import AsyncIterable, AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, BinaryIO

import anyio.to_thread

from dsxa_lite.engines import HEAD_BYTES
from dsxa_lite.zip_tail import ZipTail

if TYPE_CHECKING:
    from dsxa_lite.streamed import StreamedScan

SPOOL_FLUSH_BYTES = 1024 * 1024
# What a streamed body may receive while the previous batch is still in its threads: a window's
# YARA scan takes as long as receiving several MiB, and the transfer should not wait for it.
STREAM_SLACK_BYTES = 4 * SPOOL_FLUSH_BYTES


class BadBody(ValueError):
    """The body cannot be decoded (e.g. invalid base64): a 400, not a verdict."""


@dataclass(slots=True)
class ReceivedBody:
    """A body as received: its hash and size, first bytes, and content in memory or on disk.

    ``data`` is set for bodies kept in memory, ``spool`` for bodies on disk, ``streamed`` for
    bodies scanned as they arrived (its YARA result is ready; ``zip_tail``, when asked for, kept
    what a ZIP ending it can be in); none is set when ``too_large`` (the body went past the size
    limit and was only hashed and counted).
    """

    sha256: str
    size: int
    head: bytes
    data: bytes | None = None
    spool: BinaryIO | None = None
    too_large: bool = False
    streamed: StreamedScan | None = None
    zip_tail: ZipTail | None = None

    def close(self) -> None:
        """Release the spool file (it has no name, so closing it frees the disk space) or the
        streamed scan's slot and what it kept."""
        if self.spool is not None:
            self.spool.close()
            self.spool = None
        if self.streamed is not None:
            self.streamed.close()
        if self.zip_tail is not None:
            self.zip_tail.close()


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


def _hash(digest: Any, parts: list[bytes]) -> None:
    for part in parts:
        digest.update(part)


def _hash_and_feed(
    loop: asyncio.AbstractEventLoop,
    digest: Any,
    streamed: StreamedScan,
    parts: list[bytes],
    tail: ZipTail | None,
) -> asyncio.Future[Any]:
    # Hashing, YARA and looking for a ZIP each in a worker thread, side by side (all release the
    # GIL): on a large body they are the scanner's biggest costs, and none waits for another.
    # ``digest`` None: these parts were hashed already.
    work = [loop.run_in_executor(None, streamed.feed, parts)]
    if digest is not None:
        work.append(loop.run_in_executor(None, _hash, digest, parts))
    if tail is not None:
        work.append(loop.run_in_executor(None, tail.take, parts))
    return asyncio.gather(*work)


async def receive_body(
    chunks: AsyncIterable[bytes],
    *,
    max_size: int,
    spool_threshold: int,
    spool_dir: Path | None = None,
    stream: Callable[[bytes], StreamedScan | None] | None = None,
    keep_zip_tail: bool = False,
) -> ReceivedBody:
    """Consume ``chunks`` into a :class:`ReceivedBody` (see the module docstring).

    Past ``spool_threshold``, ``stream`` (given the first bytes) may return a scan that takes the
    body as it arrives; otherwise the body spools. Either way each flush batch is hashed and
    written (or scanned) in a worker thread while the next batch arrives (at most one batch in
    the thread and one arriving: memory stays bounded). ``keep_zip_tail``: a streamed body keeps
    on disk what a ZIP ending it can be in (:class:`~dsxa_lite.zip_tail.ZipTail`).
    """
    loop = asyncio.get_running_loop()
    digest = hashlib.sha256()
    size = 0
    head = b""
    parts: list[bytes] = []
    pending_size = 0
    spool: BinaryIO | None = None
    streamed: StreamedScan | None = None
    tail: ZipTail | None = None
    flushing: asyncio.Future[Any] | None = None  # the batch in the worker thread(s)
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
                    await asyncio.shield(flushing)
                    flushing = None
                for part in parts:  # not hashed yet
                    digest.update(part)
                digest.update(chunk)
                parts = []
                if spool is not None:
                    spool.close()
                    spool = None
                if streamed is not None:
                    streamed.close()
                    streamed = None
                if tail is not None:
                    tail.close()
                    tail = None
                continue
            parts.append(chunk)
            if spool is None and streamed is None:
                digest.update(chunk)
                if size <= spool_threshold:
                    continue
                streamed = stream(head) if stream is not None else None
                if streamed is not None:
                    tail = ZipTail(functools.partial(_open_spool, spool_dir)) if keep_zip_tail else None
                    flushing = _hash_and_feed(loop, None, streamed, parts, tail)  # hashed already
                    parts = []
                    pending_size = 0
                    continue
                spool = await anyio.to_thread.run_sync(_open_spool, spool_dir)
                await anyio.to_thread.run_sync(_write, spool, parts)  # hashed already
                parts = []
                pending_size = 0
                continue
            pending_size += len(chunk)
            if pending_size >= SPOOL_FLUSH_BYTES:
                if flushing is not None:
                    if streamed is not None and not flushing.done() and pending_size < STREAM_SLACK_BYTES:
                        continue  # YARA is scanning a window meanwhile: keep receiving
                    await asyncio.shield(flushing)
                if streamed is not None:
                    flushing = _hash_and_feed(loop, digest, streamed, parts, tail)
                elif spool is not None:
                    flushing = loop.run_in_executor(None, _hash_and_write, digest, spool, parts)
                parts = []
                pending_size = 0
        if flushing is not None:
            await asyncio.shield(flushing)
            flushing = None
        if spool is not None and parts:
            await anyio.to_thread.run_sync(_hash_and_write, digest, spool, parts)
            parts = []
        if streamed is not None:
            if parts:
                flushing = _hash_and_feed(loop, digest, streamed, parts, tail)
                await asyncio.shield(flushing)
                flushing = None
                parts = []
            await anyio.to_thread.run_sync(streamed.finish)
            if tail is not None:
                await anyio.to_thread.run_sync(tail.finish)
    except BaseException:
        # Let the threads finish with the spool or the YARA worker before it is closed or handed
        # back to the next body. Each wait above is shielded: a cancelled request (a client gone,
        # a shutdown) cancels the wait, not the work, so ``flushing`` ends when the threads do; a
        # cancelled executor future would end at once while its thread kept writing.
        if flushing is not None:
            await asyncio.shield(asyncio.wait([flushing]))
            if flushing.done() and not flushing.cancelled():
                flushing.exception()  # retrieved: the error that ends the request is the one raised
        if spool is not None:
            spool.close()
        if streamed is not None:
            streamed.close()
        if tail is not None:
            tail.close()
        raise
    data = None
    if spool is None and streamed is None and not too_large:
        data = parts[0] if len(parts) == 1 else b"".join(parts)
    return ReceivedBody(digest.hexdigest(), size, head, data, spool, too_large, streamed, tail)


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
