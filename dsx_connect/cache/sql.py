"""The unchanged-object index in the SQL history (``DSXCONNECT_RESULTS_DB`` sqlite/postgresql).

One ``scan_cache`` row per connector and location (migration 0004), unbounded like the history
itself: a store of N items keeps N rows. A batch is one SELECT and one upsert; a job's ``force``
flag is still read from Redis, where jobs live.
"""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Iterable, Sequence
from typing import Any

import redis
from sqlalchemy import Engine, and_, select
from sqlalchemy.dialects import postgresql, sqlite

from dsx_connect import keys
from dsx_connect.cache.index import Entry, Key
from dsx_connect.db.engine import shared_engine
from dsx_connect.db.schema import scan_cache

_COMPACT = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"))


class SqlIndex:
    def __init__(self, engine: Engine, client: redis.Redis) -> None:
        self.engine = engine
        self.redis = client

    @classmethod
    def for_url(cls, url: str, client: redis.Redis) -> SqlIndex:
        return cls(shared_engine(url), client)

    def lookup(self, items: Sequence[Key], job_ids: Iterable[str]) -> tuple[list[Entry | None], set[str]]:
        jobs = sorted(set(job_ids))
        flags = self.redis.pipeline(transaction=False)
        for job_id in jobs:
            flags.hget(keys.job(job_id), "force")
        forced = {job_id for job_id, flag in zip(jobs, flags.execute(), strict=True) if flag == "1"}
        by_connector: dict[str, list[str]] = defaultdict(list)
        for connector, location in items:
            by_connector[connector].append(location)
        rows: dict[Key, Entry] = {}
        c = scan_cache.c
        with self.engine.connect() as conn:
            for connector, locations in by_connector.items():
                query = select(c.location, c.version, c.sha256, c.identity, c.verdict, c.ts_us).where(
                    and_(c.connector_uuid == connector, c.location.in_(locations))
                )
                for location, version, sha256, identity, verdict, ts_us in conn.execute(query):
                    rows[(connector, location)] = Entry(
                        version, sha256, identity, json.loads(verdict), ts_us / 1e6
                    )
        return [rows.get(key) for key in items], forced

    def record(self, entries: Sequence[tuple[Key, Entry]]) -> None:
        if not entries:
            return
        latest: dict[Key, dict[str, Any]] = {}
        for (connector, location), entry in entries:
            latest[(connector, location)] = {
                "connector_uuid": connector,
                "location": location,
                "version": entry.version,
                "sha256": entry.sha256,
                "identity": entry.identity,
                "verdict": _COMPACT.encode(entry.verdict),
                "ts_us": int(entry.at * 1e6),
            }
        rows = list(latest.values())
        with self.engine.begin() as conn:
            insert = postgresql.insert if conn.dialect.name == "postgresql" else sqlite.insert
            statement = insert(scan_cache).values(rows)
            excluded = statement.excluded
            conn.execute(
                statement.on_conflict_do_update(
                    index_elements=["connector_uuid", "location"],
                    set_={
                        name: getattr(excluded, name)
                        for name in ("version", "sha256", "identity", "verdict", "ts_us")
                    },
                )
            )
