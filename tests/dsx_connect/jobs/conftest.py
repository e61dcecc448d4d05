"""A real core process on a free port with a Redis of its own, for the job tests."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

from tests.dsx_connect.conftest import Core
from tests.support.procs import ServiceProcess, base_env, free_port, redis_server, uvicorn_argv

STALL_TIMEOUT_S = 10  # the smallest allowed: the sweep runs every 2.5 s


@pytest.fixture(scope="module")
def jobs_core(tmp_path_factory: pytest.TempPathFactory, logs_dir: Path) -> Iterator[Core]:
    with redis_server(tmp_path_factory.mktemp("jobs-redis")) as (url, _):
        conn = redis.Redis.from_url(url, decode_responses=True)
        port = free_port()
        env = base_env(
            DSXCONNECT_REDIS_URL=url,
            DSXCONNECT_SCANNER__SCAN_BINARY_URL=f"http://127.0.0.1:{free_port()}/scan/binary/v2",  # nobody there
            DSXCONNECT_JOBS__STALL_TIMEOUT_S=str(STALL_TIMEOUT_S),
            DSXCONNECT_AUTH__ENABLED="false",
        )
        proc = ServiceProcess(
            f"jobs-core-{port}", uvicorn_argv("dsx_connect.app:app", port), env, logs_dir
        ).start()
        try:
            proc.wait_healthy(f"http://127.0.0.1:{port}/healthz")
            yield Core(url=f"http://127.0.0.1:{port}", redis=conn, proc=proc)
        finally:
            proc.stop()
            conn.close()
