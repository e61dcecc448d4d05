"""Searches served by the bounded Redis store (``DSXCONNECT_RESULTS_DB=redis`` or ``memory``).

Verdict, connector and job have their own Redis index; the newest-first order and the time range
follow the store's sequence numbers; SHA-256, location prefix and threat name are checked while
walking the index, at most ``scan_cap`` entries per page (the page then ends early, with a cursor).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

from dsx_connect import keys
from dsx_connect.results.rows import parse_ts_us, to_us
from dsx_connect.results.search import Cursor, Page, ResultFilters
from dsx_connect.state.results import ResultStore


class RedisReader:
    indexed = frozenset({"verdict", "connector", "job", "since"})

    def __init__(self, store: ResultStore, scan_cap: int = 20_000) -> None:
        self.store = store
        self.redis = store.redis
        self.scan_cap = scan_cap

    def get(self, request_id: str) -> dict[str, Any] | None:
        return self.store.get(request_id)

    def search(self, filters: ResultFilters, cursor: Cursor | None, limit: int, offset: int = 0) -> Page:
        index = self._index(filters)
        high: str | int = f"({cursor.id}" if cursor is not None else "+inf"
        since_us = to_us(filters.since) if filters.since is not None else None
        items: list[dict[str, Any]] = []
        examined, last_seq, chunk = 0, None, max(limit * 2, 200)
        while examined < self.scan_cap + offset:
            entries = self.redis.zrevrangebyscore(index, high, "-inf", start=0, num=chunk, withscores=True)
            if not entries:
                return Page(items, None)
            ids = [member for member, _ in entries]
            for (_request_id, seq), raw in zip(entries, self.redis.hmget(keys.RESULTS, ids), strict=True):
                examined += 1
                last_seq = int(seq)
                if raw is None:
                    continue
                event = json.loads(raw)
                if since_us is not None and parse_ts_us(event.get("timestamp")) < since_us:
                    return Page(items, None)  # newest first: everything further is older
                if filters.matches(event):
                    if offset > 0:
                        offset -= 1
                        continue
                    items.append(event)
                    if len(items) == limit:
                        return Page(items, Cursor(0, last_seq).encode())
            high = f"({last_seq}"
        return Page(items, Cursor(0, last_seq).encode() if last_seq is not None else None)

    def iter_events(self, filters: ResultFilters, chunk: int = 1000) -> Iterator[dict[str, Any]]:
        """Every matching result, newest first, from the ids its index holds when the export
        begins (one read: about 100 bytes an id in this process, 5 MB at the default 50,000
        retained). Walked a page at a time by sequence instead, a failure replaced meanwhile took
        a newer sequence, above the pages already read, and was left out; from the ids, it
        appears once, as it is when its page is read. Results stored meanwhile are not in it."""
        ids: list[str] = self.redis.zrevrange(self._index(filters), 0, -1)
        for start in range(0, len(ids), chunk):
            for raw in self.redis.hmget(keys.RESULTS, ids[start : start + chunk]):
                if raw is None:  # trimmed by retention meanwhile
                    continue
                event = json.loads(raw)
                if filters.matches(event):  # a replaced result is checked as it is now
                    yield event

    def cheap_total(self, filters: ResultFilters) -> int | None:
        """All matching results when one index answers it (no filter, or one indexed filter)."""
        active = filters.active
        if len(active) > 1 or (active and next(iter(active)) not in ("verdict", "connector", "job")):
            return None
        return int(self.redis.zcard(self._index(filters)))

    def _index(self, filters: ResultFilters) -> str:
        for kind, value in (
            ("job", filters.job),
            ("connector", filters.connector),
            ("verdict", filters.verdict),
        ):
            if value:
                return keys.results_by(kind, value)
        return keys.RESULTS_INDEX
