"""Which store answers searches, for each ``DSXCONNECT_RESULTS_DB``.

The API and the workers are separate processes: the result worker stores a result, the API reads
it. So every backend's reader is a store both can reach. ``sqlite``/``postgresql`` read the SQL
history. ``redis`` and ``memory`` read the bounded Redis store, the one the result step writes in
every mode: ``memory`` means *no durable history*. A store inside the worker's memory would be
invisible to the API, so ``memory`` keeps no results of its own; it behaves as ``redis`` and
reports itself as ``memory`` (docs/results.md).
"""

from __future__ import annotations

import redis

from dsx_connect.results.recorder import history_for
from dsx_connect.results.search import ResultsReader
from dsx_connect.results.settings import ResultsDbSettings
from dsx_connect.state.feed import FeedTarget
from dsx_connect.state.results import ResultStore
from dsx_connect.state.results_reader import RedisReader


def redis_store(
    config: ResultsDbSettings, client: redis.Redis, feed: FeedTarget | None = None
) -> ResultStore:
    """The bounded Redis store: every result's first stop, and the live views' cache. ``feed``: the
    SIEM feed's queues the writer fills in the same call (the result step's store)."""
    return ResultStore(
        client, config.redis_bound, config.request_state_ttl_s, feed=feed, searched=not config.durable
    )


def reader_for(config: ResultsDbSettings, client: redis.Redis) -> ResultsReader:
    """What searches read: the SQL history when there is one, else the bounded Redis store."""
    if config.durable:
        return history_for(config.sql_url)
    return RedisReader(redis_store(config, client))
