"""Fixtures of the worker steps' tests."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator

import pytest
import redis

from dsx_connect.workers.transport import CLIENTS, ClosableTransport, aclose, make_transport
from tests.dsx_connect.workers.standins import Storage, contract_connector
from tests.support.redis_db import flushed_db
from tests.support.threaded_server import serving


@pytest.fixture
def client(redis_url: str) -> Iterator[redis.Redis]:
    """A database of the session's real Redis, empty before and after the test."""
    with flushed_db(redis_url, 13) as conn:
        yield conn


@pytest.fixture
def storage() -> Iterator[tuple[Storage, str]]:
    """The contract connector stand-in on a free port: what it holds, and its URL."""
    store = Storage()
    with serving(contract_connector(store), name="contract connector") as url:
        yield store, f"{url}/c"


@pytest.fixture(params=CLIENTS)
async def transport(request: pytest.FixtureRequest) -> AsyncIterator[ClosableTransport]:
    """Each hot-path client (``http1``, ``aiohttp``), closed after the test."""
    made = make_transport(request.param)
    try:
        yield made
    finally:
        await aclose(made)
