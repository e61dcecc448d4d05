"""The Redis server itself: reachability and the scanner breaker's stored state, for probes."""

from __future__ import annotations

import redis

from dsx_connect import keys


def ping(client: redis.Redis) -> None:
    """Raise if Redis does not answer."""
    client.ping()


def breaker_record(client: redis.Redis) -> dict[str, str]:
    """The scanner breaker's stored hash (``state``, ``open_until``, ``last_error``; empty when closed)."""
    record: dict[str, str] = client.hgetall(keys.SCANNER_BREAKER)
    return record
