"""Receiving bodies: hashing while streaming, memory versus spool, size limit, base64."""

from __future__ import annotations

import asyncio
import base64
import os
import threading
from collections.abc import AsyncIterator, Iterable
from pathlib import Path

import anyio
import pytest

from dsxa_lite.body import BadBody, ReceivedBody, decode_base64, receive_body

from .samples import filler, sha256

pytestmark = pytest.mark.unit


async def stream(parts: Iterable[bytes]) -> AsyncIterator[bytes]:
    for part in parts:
        yield part


def receive(parts: Iterable[bytes], **limits: int | Path) -> ReceivedBody:
    options = {"max_size": 1 << 30, "spool_threshold": 1 << 20, **limits}
    return anyio.run(lambda: receive_body(stream(parts), **options))  # type: ignore[arg-type]


def chunks(data: bytes, size: int) -> list[bytes]:
    return [data[i : i + size] for i in range(0, len(data), size)]


def test_small_body_stays_in_memory_with_its_hash() -> None:
    data = filler(5000)
    body = receive(chunks(data, 777))
    assert body.data == data
    assert body.spool is None
    assert (body.sha256, body.size) == (sha256(data), len(data))
    assert body.head == data[:4096]


def test_empty_body_is_a_file_of_zero_bytes() -> None:
    body = receive([])
    assert (body.data, body.size, body.sha256) == (b"", 0, sha256(b""))


def test_body_past_the_threshold_is_spooled_to_an_unnamed_file(tmp_path: Path) -> None:
    data = os.urandom(300_000)
    body = receive(chunks(data, 8192), spool_threshold=100_000, spool_dir=tmp_path)
    try:
        assert body.data is None
        assert body.spool is not None
        assert os.pread(body.spool.fileno(), len(data) + 1, 0) == data
        assert body.sha256 == sha256(data)
        assert list(tmp_path.iterdir()) == []  # nothing named on disk
    finally:
        body.close()


def test_a_body_of_many_flush_batches_is_hashed_in_order_while_it_spools(tmp_path: Path) -> None:
    """Batches are hashed and written in a worker thread while the next arrives: order holds."""
    data = os.urandom(5 * 1024 * 1024 + 12_345)
    body = receive(chunks(data, 65_536), spool_threshold=100_000, spool_dir=tmp_path)
    try:
        assert body.spool is not None and body.size == len(data)
        assert os.pread(body.spool.fileno(), len(data) + 1, 0) == data
        assert body.sha256 == sha256(data)
    finally:
        body.close()


def test_a_spooled_body_that_passes_the_size_limit_is_still_hashed_whole() -> None:
    data = os.urandom(4 * 1024 * 1024)
    body = receive(chunks(data, 65_536), max_size=3 * 1024 * 1024, spool_threshold=100_000)
    assert body.too_large and body.spool is None
    assert (body.size, body.sha256) == (len(data), sha256(data))


def test_body_at_the_threshold_stays_in_memory() -> None:
    data = filler(100_000)
    body = receive(chunks(data, 4096), spool_threshold=100_000)
    assert body.data == data


def test_body_past_the_size_limit_is_only_hashed_and_counted() -> None:
    data = filler(50_001)
    body = receive(chunks(data, 1000), max_size=50_000, spool_threshold=10_000)
    assert body.too_large
    assert body.data is None and body.spool is None
    assert (body.size, body.sha256) == (len(data), sha256(data))


def test_body_of_exactly_the_size_limit_is_kept() -> None:
    data = filler(50_000)
    body = receive(chunks(data, 1000), max_size=50_000)
    assert not body.too_large
    assert body.data == data


def decode(parts: Iterable[bytes]) -> bytes:
    async def collect() -> bytes:
        return b"".join([piece async for piece in decode_base64(stream(parts))])

    return anyio.run(collect)


def test_base64_streams_across_chunk_boundaries_and_line_breaks() -> None:
    data = os.urandom(10_001)
    text = base64.encodebytes(data)  # 76-column lines
    assert decode(chunks(text, 7)) == data


def test_base64_without_final_padding_is_accepted() -> None:
    assert decode([base64.b64encode(b"hello").rstrip(b"=")]) == b"hello"


@pytest.mark.parametrize(
    "parts",
    [
        [b"aGVs!G8="],  # not in the alphabet
        [b"aGVsbG8=", b"aGVsbG8="],  # data after padding
        [b"aGVsb", b"G8=aGVs"],  # padding in the middle
        [b"aGVsb"],  # a lone final character cannot encode a byte
    ],
)
def test_bad_base64_is_refused(parts: list[bytes]) -> None:
    with pytest.raises(BadBody, match="invalid base64"):
        decode(parts)


def test_a_cancelled_request_closes_its_streamed_scan_only_once_the_feeding_thread_is_done() -> None:
    """A request cancelled while a batch is being fed to YARA (its client gone, a shutdown) closes its
    streamed scan, which hands the YARA worker to the next body, only after the feeding thread has
    finished with it. A cancelled executor future ends at once while its thread goes on writing: the
    next body would have shared the worker's buffers with it, and a match could be missed."""
    events: list[str] = []
    feeding, release, sent = threading.Event(), threading.Event(), threading.Event()

    class RecordingScan:
        def feed(self, parts: list[bytes]) -> None:
            events.append("feed")
            feeding.set()
            release.wait(30)
            events.append("fed")

        def finish(self) -> None:
            events.append("finish")

        def close(self) -> None:
            events.append("close")

    async def two_batches() -> AsyncIterator[bytes]:
        yield b"x" * (1 << 20)
        yield b"y" * (1 << 20)  # past the threshold: the scan is fed from here on
        sent.set()

    async def scenario() -> None:
        loop = asyncio.get_running_loop()
        task = asyncio.ensure_future(
            receive_body(
                two_batches(), max_size=1 << 30, spool_threshold=1 << 20, stream=lambda head: RecordingScan()
            )
        )
        try:
            assert await loop.run_in_executor(None, feeding.wait, 30)
            assert await loop.run_in_executor(None, sent.wait, 30)  # the body is in: it waits for the feed
            task.cancel()
            done, _ = await asyncio.wait([task], timeout=0.5)
            assert not done and events == ["feed"]  # the request waits for its thread: nothing closed
        finally:
            release.set()
        with pytest.raises(asyncio.CancelledError):
            await task
        assert events == ["feed", "fed", "close"]

    asyncio.run(scenario())
