"""Small items read in groups (``read_files``) by the hot path's client, against a real connector app
served by uvicorn: per-item results, the fallback for connectors without the route, refused calls."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager

import pytest
import uvicorn
from fastapi import FastAPI

from dsx_connect.workers import hot_path
from dsx_connect.workers.hot_path import ScanConfig, batchable, read_items
from dsx_connect.workers.http1 import HttpPool
from dsx_connect.workers.outcome import ConnectorRef
from shared.batch_read import MAX_ITEM_BYTES
from shared.connector import create_connector_app
from shared.errors import ConnectorUnavailable, NotFoundError, PermanentError
from shared.hmac_auth import Signer
from shared.models import ScanTask
from tests.shared.connector.memory_connector import MemoryConnector, MemorySettings
from tests.support.auth import CONNECTOR_AUTH, CONNECTOR_KEY_ID, CONNECTOR_SECRET
from tests.support.procs import free_port

pytestmark = [pytest.mark.unit, pytest.mark.anyio]

CFG = ScanConfig(
    scan_url="http://127.0.0.1:9/scan/binary/v2", auth_token=None, protected_entity=1, scanner_timeout_s=5,
    connector_timeout_s=5, connect_timeout_s=2, max_file_size_bytes=1 << 30,
)  # fmt: skip
SIGNER = Signer(CONNECTOR_KEY_ID, CONNECTOR_SECRET)


@asynccontextmanager
async def served(app: FastAPI) -> AsyncIterator[str]:
    """``app`` on a free port for the test's duration (no lifespan: nothing registers anywhere)."""
    port = free_port()
    server = uvicorn.Server(
        uvicorn.Config(app, host="127.0.0.1", port=port, lifespan="off", log_level="warning")
    )
    serving = asyncio.ensure_future(server.serve())
    try:
        while not server.started:
            if serving.done():
                serving.result()  # raises why it could not start
            await asyncio.sleep(0.01)
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        await serving


def task(location: str, size: int | None = 5) -> ScanTask:
    return ScanTask(
        id=location, connector_uuid="c1", location=location, metainfo=location, job_id="j", size_in_bytes=size
    )


@pytest.fixture
def pool() -> Iterator[HttpPool]:
    pool = HttpPool()
    yield pool
    pool.close()


@pytest.fixture
async def connector_url() -> AsyncIterator[str]:
    items = {"a.txt": b"alpha", "b.bin": bytes(range(256)) * 4, "big.bin": b"x" * (MAX_ITEM_BYTES + 1)}
    connector = MemoryConnector(MemorySettings(auth=CONNECTOR_AUTH), items=items)  # type: ignore[arg-type]
    async with served(create_connector_app(connector)) as base:
        yield base + "/memory-connector"


async def test_a_group_comes_back_item_by_item(connector_url: str, pool: HttpPool) -> None:
    ref = ConnectorRef(uuid="c1", name="memory-connector", url=connector_url)
    wanted = [task("a.txt"), task("nope.txt"), task("b.bin"), task("../escape"), task("big.bin")]
    got = await read_items(pool, wanted, ref, CFG, SIGNER)
    assert got is not None
    assert got[0] == b"alpha" and got[2] == bytes(range(256)) * 4
    assert isinstance(got[1], NotFoundError)
    assert isinstance(got[3], PermanentError) and got[3].status_code == 403
    assert got[4] is None  # too large for a group: the caller reads it with read_file


async def test_an_unsigned_group_is_refused_like_read_file(connector_url: str, pool: HttpPool) -> None:
    ref = ConnectorRef(uuid="c1", name="memory-connector", url=connector_url)
    with pytest.raises(ConnectorUnavailable) as refused:  # 401 is retried (key rotation)
        await read_items(pool, [task("a.txt")], ref, CFG, Signer(CONNECTOR_KEY_ID, "a wrong secret"))
    assert refused.value.status_code == 401


async def test_a_connector_without_read_files_is_read_item_by_item(pool: HttpPool) -> None:
    async with served(FastAPI()) as base:  # a 1.x connector: no such route
        ref = ConnectorRef(uuid="c2", name="old-connector", url=base + "/old-connector")
        assert batchable(task("a.txt"), ref)
        try:
            assert await read_items(pool, [task("a.txt")], ref, CFG, None) is None
            assert not batchable(task("a.txt"), ref)  # remembered: no second try for a while
        finally:
            hot_path._no_batch.pop(ref.url, None)


def test_only_small_items_of_known_size_are_grouped() -> None:
    ref = ConnectorRef(uuid="c3", name="x", url="http://127.0.0.1:1/x")
    assert batchable(task("a", size=MAX_ITEM_BYTES), ref)
    assert not batchable(task("a", size=MAX_ITEM_BYTES + 1), ref)
    assert not batchable(task("a", size=None), ref)
