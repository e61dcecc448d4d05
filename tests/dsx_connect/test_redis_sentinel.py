"""``redis+sentinel://`` URLs: parsed into the Sentinels, the master set and the login; the core's sync
client, its asyncio pub/sub client and the Celery broker follow the master a real Sentinel names."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path

import pytest

from devstack.emulators import redis_sentinel
from dsx_connect.redis_client import _client, async_redis
from dsx_connect.redis_sentinel import SentinelUrlError, parse_sentinel_url
from dsx_connect.settings import Settings


@pytest.mark.unit
def test_a_sentinel_url_names_hosts_master_db_and_logins() -> None:
    target = parse_sentinel_url(
        "redis+sentinel://:s3cret@s1:26379,s2:26380,s3/dsxmaster/2?sentinel_password=sp"
    )
    assert target.hosts == (("s1", 26379), ("s2", 26380), ("s3", 26379))
    assert (target.master, target.db, target.password, target.sentinel_password) == (
        "dsxmaster",
        2,
        "s3cret",
        "sp",
    )
    url, options = target.celery_broker()
    assert url == "sentinel://:s3cret@s1:26379/2;sentinel://:s3cret@s2:26380/2;sentinel://:s3cret@s3:26379/2"
    assert options == {"master_name": "dsxmaster", "sentinel_kwargs": {"password": "sp"}}
    assert parse_sentinel_url("sentinel://h:1/m").db == 0


@pytest.mark.unit
@pytest.mark.parametrize(
    ("url", "problem"),
    [
        ("redis+sentinel://h1:26379", "master name is missing"),
        ("redis+sentinel://h1:port/m", "bad Sentinel address"),
        ("redis+sentinel://h1:26379/m/zero", "database must be a number"),
    ],
)
def test_a_bad_sentinel_url_stops_the_core_naming_the_variable(url: str, problem: str) -> None:
    with pytest.raises(SentinelUrlError, match=problem):
        parse_sentinel_url(url)
    with pytest.raises(ValueError, match=f"DSXCONNECT_REDIS_URL: .*{problem}"):
        Settings(redis_url=url)


@pytest.fixture
def sentinel(tmp_path: Path) -> Iterator[str]:
    """A real redis-server and a real Sentinel (Debian's redis-sentinel) watching it."""
    with redis_sentinel(tmp_path, "m1") as (_master_port, sentinel_port):  # devstack starts both
        yield f"redis+sentinel://127.0.0.1:{sentinel_port}/m1/3"


@pytest.mark.integration
def test_the_core_clients_reach_the_master_the_sentinel_names(sentinel: str) -> None:
    client = _client(-1, sentinel)
    client.set("dsxc:test:sentinel", "yes")
    assert client.get("dsxc:test:sentinel") == "yes"
    assert client.connection_pool.connection_kwargs["db"] == 3

    async def round_trip() -> str:
        aclient = async_redis(sentinel)
        pubsub = aclient.pubsub()
        await pubsub.subscribe("dsxc:test:channel")
        await pubsub.get_message(timeout=2)  # the subscribe confirmation
        await aclient.publish("dsxc:test:channel", "hello")
        message = await pubsub.get_message(ignore_subscribe_messages=True, timeout=5)
        await pubsub.aclose()
        await aclient.aclose()
        return str(message["data"]) if message else ""

    assert asyncio.run(round_trip()) == "hello"
