"""The results stores under test: Redis (the bounded store of ``redis``), ``memory`` as the result step
and the API select it, SQLite and a real PostgreSQL, behind one writer/reader pair so one suite runs
against each."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import redis

from dsx_connect.db.engine import make_engine
from dsx_connect.db.migrate import upgrade
from dsx_connect.results.history import SqlHistory
from dsx_connect.results.readers import reader_for, redis_store
from dsx_connect.results.recorder import record_history
from dsx_connect.results.redis_reader import RedisReader
from dsx_connect.results.settings import ResultsDbSettings
from dsx_connect.results.store import ResultStore
from tests.support.postgres import create_database

REDIS_DB = 13


@dataclass
class Backend:
    name: str
    write: Callable[[list[dict[str, Any]]], None]
    reader: Any  # RedisReader | SqlHistory


def sql_url(kind: str, tmp_path: Path, postgres_url: Callable[[], str]) -> str:
    if kind == "sqlite":
        return f"sqlite:///{tmp_path / 'results.db'}"
    return create_database(postgres_url()).replace("postgresql://", "postgresql+psycopg://")


@pytest.fixture
def redis_client(redis_url: str) -> Iterator[redis.Redis]:
    conn = redis.Redis.from_url(redis_url.rsplit("/", 1)[0] + f"/{REDIS_DB}", decode_responses=True)
    conn.flushdb()
    yield conn
    conn.flushdb()
    conn.close()


@pytest.fixture
def pg_server(request: pytest.FixtureRequest) -> Callable[[], str]:
    """The session's PostgreSQL, started only when a test asks for it."""
    return lambda: request.getfixturevalue("postgres_url")


@pytest.fixture
def sql_history(
    request: pytest.FixtureRequest, tmp_path: Path, pg_server: Callable[[], str]
) -> Iterator[SqlHistory]:
    url = sql_url(request.param, tmp_path, pg_server)
    upgrade(url)
    engine = make_engine(url)
    yield SqlHistory(engine)
    engine.dispose()


def memory_backend(client: redis.Redis, retain: int = 10_000) -> Backend:
    """``DSXCONNECT_RESULTS_DB=memory`` as the result step and the API see it: what the step writes
    (Redis, then the history, of which memory has none) and the reader the API chooses."""
    config = ResultsDbSettings.model_validate({"url": "memory", "retain": retain})

    def write(events: list[dict[str, Any]]) -> None:
        redis_store(config, client).store_many(events)
        assert record_history(config, client, events)

    return Backend("memory", write, reader_for(config, client))


@pytest.fixture(params=["redis", "memory", "sqlite", "postgresql"])
def backend(
    request: pytest.FixtureRequest, redis_client: redis.Redis, tmp_path: Path, pg_server: Callable[[], str]
) -> Iterator[Backend]:
    if request.param == "redis":
        store = ResultStore(redis_client, retain=10_000)
        yield Backend("redis", store.store_many, RedisReader(store))
        return
    if request.param == "memory":
        yield memory_backend(redis_client)
        return
    url = sql_url(request.param, tmp_path, pg_server)
    upgrade(url)
    engine = make_engine(url)
    history = SqlHistory(engine)
    yield Backend(request.param, history.record, history)
    engine.dispose()


def make_event(
    n: int,
    *,
    job: str = "j1",
    verdict: str = "Benign",
    connector: str = "c1",
    location: str | None = None,
    ts: str | None = None,
    sha256: str | None = None,
    reason: str = "",
    error: dict[str, str] | None = None,
    action_status: str = "nothing",
) -> dict[str, Any]:
    """A SPEC §7 event as the result step builds it."""
    return {
        "event_type": "scan_result",
        "schema_version": 1,
        "timestamp": ts or f"2026-12-01T10:{n // 60 % 60:02d}:{n % 60:02d}.000000Z",
        "scan_request_id": f"r{n}",
        "job_id": job,
        "connector": {"name": "fs", "uuid": connector},
        "location": location or f"docs/f{n}.txt",
        "metainfo": f"f{n}.txt",
        "verdict": verdict,
        "verdict_details": {
            "event_description": "",
            "reason": reason,
            "threat_type": "VIRUS" if reason else None,
        },
        "file_info": {"file_type": "TXT", "size_in_bytes": 10 + n, "sha256": sha256 or f"{n:064x}"},
        "action": {
            "requested": "move",
            "applied": verdict == "Malicious",
            "status": action_status,
            "message": "",
        },
        "scanner": {"scan_guid": "g", "duration_us": 5, "engine_version": "", "cached": False},
        "severity": 6,
        "error": error,
    }
