"""A streamed item's source (``ItemContent.chunks``) is closed when its answer ends, whatever ends it:
the last chunk, a client that went away, an error. Left to the garbage collector (a reference cycle
through ``ClientDisconnect``'s traceback, and ``shared.gc_tuning`` makes full collections rare) a
local file's descriptor stayed open for as long as that took."""

from __future__ import annotations

import gc
import os
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anyio
import httpx
import pytest
from starlette.requests import ClientDisconnect
from starlette.types import Message

from connectors.filesystem.connector import FilesystemConnector
from connectors.filesystem.settings import FilesystemSettings
from shared.connector import create_connector_app
from shared.connector.base import ItemContent
from shared.hmac_auth import Signer
from tests.shared.connector.memory_connector import MemoryConnector, MemorySettings
from tests.support.auth import CONNECTOR_AUTH, CONNECTOR_KEY_ID, CONNECTOR_SECRET, core_signer
from tests.support.threaded_server import serving

pytestmark = [pytest.mark.unit, pytest.mark.anyio]

PREFIX = "/memory-connector"
SIGNER = Signer(CONNECTOR_KEY_ID, CONNECTOR_SECRET)


class AsyncSource:
    """Chunks with ``aclose`` (the shape of an async generator or the filesystem's ``_FileChunks``)."""

    def __init__(self, count: int = 50) -> None:
        self.left = count
        self.closed = False

    def __aiter__(self) -> AsyncSource:
        return self

    async def __anext__(self) -> bytes:
        if self.closed or not self.left:
            raise StopAsyncIteration
        self.left -= 1
        return b"x" * 1000

    async def aclose(self) -> None:
        self.closed = True


class SyncCloseSource(AsyncSource):
    """Chunks with a plain ``close()`` and no ``aclose``."""

    aclose = None  # type: ignore[assignment]

    def close(self) -> None:
        self.closed = True


class SourceConnector(MemoryConnector):
    """Serves every item from a fresh ``source()``, remembered in ``served``."""

    def __init__(self, source: type[AsyncSource]) -> None:
        super().__init__(MemorySettings(auth=CONNECTOR_AUTH), items={"big.bin": b"x" * 50_000})  # type: ignore[arg-type]
        self.source = source
        self.served: list[AsyncSource] = []

    async def read(self, location: str) -> ItemContent:
        self.resolve(location)
        chunks = self.source()
        self.served.append(chunks)
        return ItemContent(size=50_000, chunks=chunks)  # type: ignore[arg-type]


def read_file_scope(body: bytes, spec_version: str) -> dict[str, Any]:
    path = f"{PREFIX}/read_file"
    return {
        "type": "http",
        "asgi": {"version": "3.0", "spec_version": spec_version},
        "http_version": "1.1",
        "method": "POST",
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "query_string": b"",
        "root_path": "",
        "headers": [
            (b"content-type", b"application/json"),
            (b"content-length", str(len(body)).encode()),
            (b"authorization", SIGNER.authorization("POST", path, body).encode()),
        ],
        "client": ("127.0.0.1", 1234),
        "server": ("127.0.0.1", 80),
    }


@pytest.mark.parametrize("source", [AsyncSource, SyncCloseSource])
@pytest.mark.parametrize("spec_version", ["2.4", "2.3"])
async def test_a_client_that_goes_away_mid_stream_gets_its_source_closed(
    source: type[AsyncSource], spec_version: str
) -> None:
    """ASGI 2.4: ``send`` raises ``OSError`` once the client is gone; before 2.4, ``receive`` says
    ``http.disconnect`` and the stream is cancelled."""
    connector = SourceConnector(source)
    app = create_connector_app(connector)
    body = b'{"location": "big.bin", "metainfo": "b"}'
    delivered = False
    sent: list[Message] = []
    gone = anyio.Event()  # the client hung up after a few chunks

    async def receive() -> Message:
        nonlocal delivered
        if not delivered:
            delivered = True
            return {"type": "http.request", "body": body, "more_body": False}
        if spec_version == "2.4":
            raise AssertionError("an ASGI 2.4 response does not listen for the disconnect")
        await gone.wait()
        return {"type": "http.disconnect"}

    async def send(message: Message) -> None:
        if len(sent) >= 3:
            gone.set()
            if spec_version == "2.4":
                raise OSError("connection reset by peer")
            await anyio.sleep(0.01)  # a slow client: the disconnect cancels the stream
        sent.append(message)

    gc.disable()  # the old leak was a reference cycle: a collection would hide it
    try:
        try:
            await app(read_file_scope(body, spec_version), receive, send)
        except ClientDisconnect:
            pass
        assert sent[0]["status"] == 200
        assert len(connector.served) == 1
        assert connector.served[0].closed, "the stream's source was left open"
    finally:
        gc.enable()


@pytest.mark.parametrize("source", [AsyncSource, SyncCloseSource])
async def test_a_finished_stream_and_a_read_files_item_close_their_source(source: type[AsyncSource]) -> None:
    connector = SourceConnector(source)
    app = create_connector_app(connector)
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://t", auth=core_signer()
    ) as http:
        whole = await http.post(f"{PREFIX}/read_file", json={"location": "big.bin", "metainfo": "b"})
        assert whole.status_code == 200 and len(whole.content) == 50_000
        batch = await http.post(f"{PREFIX}/read_files", json={"items": [{"location": "big.bin"}] * 2})
        assert batch.status_code == 200
    assert len(connector.served) == 3 and all(s.closed for s in connector.served)


def _open_descriptors_of(path: Path) -> int:
    count = 0
    for fd in os.listdir("/proc/self/fd"):
        try:
            if os.readlink(f"/proc/self/fd/{fd}") == str(path):
                count += 1
        except OSError:
            continue
    return count


@pytest.fixture
def no_gc() -> Iterator[None]:
    gc.disable()
    try:
        yield
    finally:
        gc.enable()


@pytest.mark.skipif(not os.path.isdir("/proc/self/fd"), reason="needs /proc")
def test_aborted_reads_of_a_local_file_leave_no_descriptor_open(tmp_path: Path, no_gc: None) -> None:
    """Real HTTP (uvicorn): clients that read one chunk of a large file and hang up."""
    asset = tmp_path / "asset"
    asset.mkdir()
    big = asset / "big.bin"
    big.write_bytes(os.urandom(8 << 20))  # streamed: larger than SMALL_ITEM_BYTES
    connector = FilesystemConnector(FilesystemSettings(asset=str(asset), auth=CONNECTOR_AUTH))  # type: ignore[arg-type]
    app = create_connector_app(connector)
    with serving(app) as url:
        for _ in range(5):
            with httpx.Client(auth=core_signer(), timeout=30) as http:  # closing it drops the connection
                request = {"location": "big.bin", "metainfo": "b"}
                with http.stream("POST", url + "/filesystem-connector/read_file", json=request) as answer:
                    assert answer.status_code == 200
                    next(answer.iter_raw())
        deadline = time.monotonic() + 10
        while _open_descriptors_of(big) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert _open_descriptors_of(big) == 0
