"""scripts/bench.py reads Redis's own count and CPU of each command (INFO commandstats) per file."""

from __future__ import annotations

from pathlib import Path

import pytest
import redis

from scripts import bench
from tests.support.procs import redis_server

pytestmark = pytest.mark.integration


def test_redis_commands_are_reported_per_file_from_the_servers_own_counts(tmp_path: Path) -> None:
    with redis_server(tmp_path) as (url, _proc):  # its own server: nothing else counts in it
        client = redis.Redis.from_url(url)
        client.config_resetstat()
        for n in range(10):
            client.hset("bench:test", str(n), "x")
        client.delete("bench:test")
        per_file = bench.redis_commands_per_file(client, files=5)
        client.close()
    assert per_file["hset"]["calls"] == 2.0  # 10 calls over 5 files
    assert per_file["hset"]["usec"] > 0
    assert per_file["del"]["calls"] == 0.2
    assert list(per_file) == sorted(per_file, key=lambda name: -per_file[name]["usec"])
