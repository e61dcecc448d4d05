"""The unchanged-object index in Redis: one hash per connector (``keys.scan_cache_index``), location
-> entry JSON, at most ``max_entries`` fields (random eviction: a miss only costs a scan).

What an entry holds and when it serves a hit is ``dsx_connect.cache.index``; the SQL history's
store (``dsx_connect.cache.sql``) reads only the jobs' ``force`` flags here.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence

import redis

from dsx_connect import keys
from dsx_connect.cache.index import Entry, Key


def forced_jobs(client: redis.Redis, job_ids: Sequence[str]) -> set[str]:
    """The jobs of ``job_ids`` started with ``force`` (their items are scanned again): one round trip."""
    ordered = sorted(set(job_ids))
    pipe = client.pipeline(transaction=False)
    for job_id in ordered:
        pipe.hget(keys.job(job_id), "force")
    return {job_id for job_id, flag in zip(ordered, pipe.execute(), strict=True) if flag == "1"}


class RedisIndex:
    """The index in Redis (a ``cache.index.IndexStore``): each batch is one round trip, plus one per
    connector whose hash grew past ``max_entries``."""

    def __init__(self, client: redis.Redis, max_entries: int) -> None:
        self.redis = client
        self.max_entries = max_entries

    def lookup(self, items: Sequence[Key], jobs: Sequence[str]) -> tuple[list[Entry | None], set[str]]:
        job_ids = sorted(set(jobs))
        by_connector: dict[str, list[int]] = defaultdict(list)
        for i, (connector, _) in enumerate(items):
            by_connector[connector].append(i)
        pipe = self.redis.pipeline(transaction=False)
        for job_id in job_ids:
            pipe.hget(keys.job(job_id), "force")
        for connector, indices in by_connector.items():
            pipe.hmget(keys.scan_cache_index(connector), [items[i][1] for i in indices])
        answers = pipe.execute()
        forced = {job_id for job_id, flag in zip(job_ids, answers, strict=False) if flag == "1"}
        found: list[Entry | None] = [None] * len(items)
        for indices, raws in zip(by_connector.values(), answers[len(job_ids) :], strict=True):
            for i, raw in zip(indices, raws, strict=True):
                if jobs[i] not in forced:
                    found[i] = Entry.load(raw)
        return found, forced

    def record(self, entries: Sequence[tuple[Key, Entry]]) -> None:
        if not entries:
            return
        by_connector: dict[str, dict[str, str]] = defaultdict(dict)
        for (connector, location), entry in entries:
            by_connector[connector][location] = entry.dump()
        pipe = self.redis.pipeline(transaction=False)
        for connector, mapping in by_connector.items():
            pipe.hset(keys.scan_cache_index(connector), mapping=mapping)
            pipe.hlen(keys.scan_cache_index(connector))
        answers = pipe.execute()
        sizes = answers[1::2]
        over = {c: int(n) - self.max_entries for c, n in zip(by_connector, sizes, strict=True)}
        for connector, excess in over.items():
            if excess > 0:  # bounded: random eviction, a miss only costs a scan
                victims = self.redis.hrandfield(keys.scan_cache_index(connector), excess)
                if victims:
                    self.redis.hdel(keys.scan_cache_index(connector), *victims)

    def forget(self, connector_uuid: str) -> None:
        """Drop a connector's whole index."""
        self.redis.delete(keys.scan_cache_index(connector_uuid))
