"""One pooled Redis client per process."""

from __future__ import annotations

import os
from functools import lru_cache

import redis

from dsx_connect.settings import get_settings


@lru_cache
def _client(pid: int, url: str) -> redis.Redis:
    return redis.Redis.from_url(url, decode_responses=True, health_check_interval=30, socket_timeout=10)


def get_redis() -> redis.Redis:
    """The process's Redis client (a new pool after fork, so prefork children never share sockets)."""
    return _client(os.getpid(), get_settings().redis_url)
