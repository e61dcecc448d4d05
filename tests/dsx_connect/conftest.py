"""A real core API process on a free port, against the session's real Redis."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
import redis

from tests.support.auth import OPERATOR_HEADERS
from tests.support.procs import ServiceProcess, base_env, free_port, uvicorn_argv

API = "/dsx-connect/api/v1"


@dataclass
class Core:
    url: str
    redis: redis.Redis
    proc: ServiceProcess

    @property
    def api(self) -> str:
        return self.url + API

    def client(self) -> httpx.Client:
        """An operator's client (API key), which may also register connectors (enrollment token)."""
        return httpx.Client(base_url=self.api, timeout=10.0, headers=OPERATOR_HEADERS)


@pytest.fixture(scope="module")
def core(redis_url: str, logs_dir: Path) -> Iterator[Core]:
    db_url = redis_url.rsplit("/", 1)[0] + "/6"
    conn = redis.Redis.from_url(db_url, decode_responses=True)
    conn.flushdb()
    port = free_port()
    env = base_env(
        DSXCONNECT_REDIS_URL=db_url,
        DSXCONNECT_SCANNER__SCAN_BINARY_URL=f"http://127.0.0.1:{free_port()}/scan/binary/v2",  # nobody there
        DSXCONNECT_WORKERS__SCAN_REQUEST_BATCH_MAX_SIZE="64",
    )
    proc = ServiceProcess(
        f"core-api-{port}", uvicorn_argv("dsx_connect.app:app", port), env, logs_dir
    ).start()
    try:
        proc.wait_healthy(f"http://127.0.0.1:{port}/healthz")
        yield Core(url=f"http://127.0.0.1:{port}", redis=conn, proc=proc)
    finally:
        proc.stop()
        conn.flushdb()
        conn.close()
