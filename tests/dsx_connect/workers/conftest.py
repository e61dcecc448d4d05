"""Fixtures of the worker steps' tests."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import redis

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
