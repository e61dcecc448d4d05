"""One pooled Redis client per process; a ``redis+sentinel://`` URL gives a client that follows the
master the Sentinels name (dsx_connect.redis_sentinel)."""

from __future__ import annotations

import os
from functools import lru_cache

import redis
import redis.asyncio as aredis
import redis.exceptions
from redis.asyncio.sentinel import Sentinel as AsyncSentinel
from redis.sentinel import Sentinel

from dsx_connect.redis_sentinel import is_sentinel_url, parse_sentinel_url
from dsx_connect.settings import get_settings


@lru_cache
def _client(pid: int, url: str) -> redis.Redis:
    if is_sentinel_url(url):
        target = parse_sentinel_url(url)
        sentinel = Sentinel(list(target.hosts), sentinel_kwargs=target.sentinel_kwargs(), socket_timeout=10)
        return sentinel.master_for(
            target.master, decode_responses=True, health_check_interval=30, socket_timeout=10,
            **target.master_kwargs(),
        )  # fmt: skip
    return redis.Redis.from_url(url, decode_responses=True, health_check_interval=30, socket_timeout=10)


def async_redis(url: str) -> aredis.Redis:
    """An asyncio client for ``url`` (pub/sub of the SSE streams), Sentinel-aware like :func:`get_redis`."""
    if is_sentinel_url(url):
        target = parse_sentinel_url(url)
        sentinel = AsyncSentinel(list(target.hosts), sentinel_kwargs=target.sentinel_kwargs())
        return sentinel.master_for(
            target.master, decode_responses=True, health_check_interval=30,
            **target.master_kwargs(),
        )  # fmt: skip
    return aredis.Redis.from_url(url, decode_responses=True, health_check_interval=30)


def get_redis() -> redis.Redis:
    """The process's Redis client (a new pool after fork, so prefork children never share sockets)."""
    return _client(os.getpid(), get_settings().redis_url)


class NotReplicated(redis.exceptions.ConnectionError):
    """Fewer replicas than ``DSXCONNECT_REDIS_WAIT_REPLICAS`` confirmed a write in time: treated like
    Redis being unreachable (the API answers 503, a worker retries its task); the write stays, and the
    retry is idempotent."""


def replicated(client: redis.Redis, replicas: int, timeout_ms: int) -> None:
    """Return once ``replicas`` replicas hold every write this connection made (Redis ``WAIT``)."""
    if replicas <= 0:
        return
    acknowledged = int(client.wait(replicas, timeout_ms))
    if acknowledged < replicas:
        raise NotReplicated(
            f"only {acknowledged} of {replicas} Redis replicas confirmed the write within {timeout_ms} ms"
        )
