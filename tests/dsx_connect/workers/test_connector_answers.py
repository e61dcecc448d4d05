"""What the hot path makes of a connector's odd or hostile answer to a read, through both transports
against raw asyncio servers: an answer whose end cannot be told from a cut connection, a JSON error
answered 200 under another JSON media type, a chunked answer past the size limit. In each case no
partial or wrong bytes may reach the scanner as the file (its verdict would be stored, and cached,
under the item's version)."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable

import pytest

from dsx_connect.workers import hot_path
from dsx_connect.workers.hot_path import ScanConfig, read_items, scan_item
from dsx_connect.workers.outcome import ConnectorRef
from dsx_connect.workers.transport import ClosableTransport
from shared.batch_read import MEDIA_TYPE, frame_header
from shared.errors import ConnectorUnavailable, PermanentError
from shared.models import DsxaVerdict, ScanTask
from tests.dsx_connect.workers.test_http1 import Request, RequestReader, answer, serve

pytestmark = [pytest.mark.unit, pytest.mark.anyio]

Handler = Callable[[RequestReader, asyncio.StreamWriter], Awaitable[None]]
BENIGN = json.dumps({"verdict": "Benign", "file_info": {"file_size_in_bytes": 0}}).encode()
FILE = bytes(range(256)) * 8  # 2 KiB


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


def task(size: int | None = None) -> ScanTask:
    return ScanTask(
        id="r1", connector_uuid="c1", location="a.bin", metainfo="a.bin", job_id="j1", size_in_bytes=size
    )


def replying(raw: bytes) -> Handler:
    """A connector that answers one request with ``raw`` and then closes the connection cleanly."""

    async def handler(requests: RequestReader, writer: asyncio.StreamWriter) -> None:
        await requests.next()
        writer.write(raw)
        await writer.drain()

    return handler


def chunked(data: bytes, piece: int, content_type: str = "application/octet-stream") -> bytes:
    framed = b"".join(
        b"%x\r\n%s\r\n" % (len(data[i : i + piece]), data[i : i + piece]) for i in range(0, len(data), piece)
    )
    head = f"HTTP/1.1 200 OK\r\nContent-Type: {content_type}\r\nTransfer-Encoding: chunked\r\n\r\n"
    return head.encode() + framed + b"0\r\n\r\n"


class Scanner:
    """A scanner that records what it was sent and answers Benign to each complete request."""

    def __init__(self) -> None:
        self.received: list[Request] = []
        self.connections = 0

    async def __call__(self, requests: RequestReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        while (req := await requests.next()) is not None:
            self.received.append(req)
            writer.write(answer(BENIGN, extra="Content-Type: application/json\r\n"))
            await writer.drain()


async def scan_with(
    transport: ClosableTransport, connector: Handler, scanner: Scanner, item: ScanTask, limit: int = 1 << 30
) -> object:
    """``scan_item`` of ``item`` against ``connector`` and ``scanner``: its verdict or what it raised."""
    async with serve(connector) as (connector_url, _), serve(scanner) as (scanner_url, _):
        cfg = ScanConfig(
            scan_url=f"{scanner_url}/scan/binary/v2", auth_token=None, protected_entity=1, scanner_timeout_s=5,
            connector_timeout_s=5, connect_timeout_s=2, max_file_size_bytes=limit,
        )  # fmt: skip
        ref = ConnectorRef(uuid="c1", name="raw", url=f"{connector_url}/c")
        try:
            return await scan_item(transport, item, ref, cfg)
        except Exception as exc:
            return exc


async def test_a_file_answer_neither_chunked_nor_of_known_length_is_never_scanned(
    transport: ClosableTransport,
) -> None:
    """A close-delimited 200 whose connection closed cleanly half-way was taken as the whole file:
    the half was scanned and its verdict stored (and cached) under the item's version."""
    half = FILE[: len(FILE) // 2]
    raw = b"HTTP/1.1 200 OK\r\nContent-Type: application/octet-stream\r\nConnection: close\r\n\r\n" + half
    scanner = Scanner()
    got = await scan_with(transport, replying(raw), scanner, task())
    assert isinstance(got, ConnectorUnavailable), got  # retried: the connector misbehaved
    assert "Content-Length or chunked" in got.message
    assert scanner.received == [] and scanner.connections == 0


async def test_a_group_answer_neither_chunked_nor_of_known_length_is_refused(
    transport: ClosableTransport,
) -> None:
    frames = frame_header(200, 5) + b"alpha"
    raw = f"HTTP/1.1 200 OK\r\nContent-Type: {MEDIA_TYPE}\r\nConnection: close\r\n\r\n".encode() + frames
    async with serve(replying(raw)) as (url, _):
        cfg = ScanConfig(
            scan_url="http://127.0.0.1:9/scan", auth_token=None, protected_entity=1, scanner_timeout_s=5,
            connector_timeout_s=5, connect_timeout_s=2, max_file_size_bytes=1 << 30,
        )  # fmt: skip
        with pytest.raises(ConnectorUnavailable, match="Content-Length or chunked"):
            await read_items(transport, [task(5)], ConnectorRef(uuid="c1", url=f"{url}/c"), cfg)


async def test_the_same_answers_framed_are_scanned_whole(transport: ClosableTransport) -> None:
    for raw in (chunked(FILE, 100), answer(FILE, extra="Content-Type: application/octet-stream\r\n")):
        scanner = Scanner()
        got = await scan_with(transport, replying(raw), scanner, task())
        assert getattr(got, "verdict", None) == "Benign", got
        assert [bytes(r.body) for r in scanner.received] == [FILE]


@pytest.mark.parametrize(
    "media_type",
    [
        "application/problem+json",
        "text/json",
        "application/vnd.api+json",
        "Application/JSON; charset=utf-8",  # parameters and case: stripped by the transports
    ],
)
async def test_a_json_answer_of_any_json_media_type_is_an_error_never_the_file(
    transport: ClosableTransport, media_type: str
) -> None:
    """Only ``application/json`` exactly was taken for an error: a connector's ``problem+json``
    error answered 200 was scanned as the file (SPEC §5: a JSON content type is an error)."""
    body = b'{"status": "error", "message": "no such object"}'
    raw = answer(body, extra=f"Content-Type: {media_type}\r\n")
    scanner = Scanner()
    got = await scan_with(transport, replying(raw), scanner, task())
    assert isinstance(got, PermanentError), got
    assert "JSON instead of the file" in got.message and "no such object" in got.message
    assert scanner.received == []


def test_json_media_types() -> None:
    is_json = hot_path.is_json
    assert is_json("application/json") and is_json("text/json") and is_json("application/problem+json")
    assert not is_json("application/octet-stream") and not is_json("application/jsonl")
    assert not is_json("") and not is_json("application/x-json-stream")


async def test_a_chunked_answer_past_the_size_limit_is_too_large_like_a_declared_one(
    transport: ClosableTransport,
) -> None:
    """The size limit was checked against the declared size and Content-Length only: a chunked
    answer (no size known) of any length was streamed whole to the scanner."""
    limit = 1000
    data = b"z" * (limit + 1)
    scanner = Scanner()
    got = await scan_with(transport, replying(chunked(data, 100)), scanner, task(), limit=limit)
    declared = await scan_with(
        transport, replying(chunked(data, 100)), Scanner(), task(limit + 1), limit=limit
    )
    assert isinstance(got, DsxaVerdict) and isinstance(declared, DsxaVerdict), got
    assert (got.verdict, got.verdict_details) == (declared.verdict, declared.verdict_details)
    assert got.verdict_details.reason == "File Size Too Large" and got.file_info.file_size_in_bytes > limit
    assert scanner.received == []  # never a complete request: the scanner gave no verdict on a part

    exact = Scanner()  # the limit itself is scanned
    got = await scan_with(transport, replying(chunked(data[:limit], 100)), exact, task(), limit=limit)
    assert isinstance(got, DsxaVerdict) and got.verdict == "Benign", got
    assert [len(r.body) for r in exact.received] == [limit]
