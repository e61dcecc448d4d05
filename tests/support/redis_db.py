"""One database of the session's real redis-server, empty for each test."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import redis


@contextmanager
def flushed_db(redis_url: str, db: int) -> Iterator[redis.Redis]:
    """A client of database ``db`` of the server at ``redis_url``, flushed before and after."""
    conn = redis.Redis.from_url(redis_url.rsplit("/", 1)[0] + f"/{db}", decode_responses=True)
    conn.flushdb()
    try:
        yield conn
    finally:
        conn.flushdb()
        conn.close()
