"""The unchanged-object index in the SQL history (``DSXCONNECT_RESULTS_DB`` sqlite/postgresql).

One ``scan_cache`` row per connector and location (migration 0004), unbounded like the history
itself: a store of N items keeps N rows. A batch is one SELECT and one upsert; a job's ``force``
flag is still read from Redis, where jobs live (``state.scan_cache.forced_jobs``).
"""

from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import Iterable, Sequence
from contextlib import closing
from typing import Any

import redis
from sqlalchemy import Connection, Engine, and_, bindparam, select
from sqlalchemy.dialects import postgresql, sqlite

from dsx_connect.cache.index import Entry, Key
from dsx_connect.db.engine import begin_write, shared_engine
from dsx_connect.db.schema import scan_cache
from dsx_connect.results.rows import sha256_of
from dsx_connect.state.scan_cache import forced_jobs

log = logging.getLogger(__name__)

_UPDATED = ("version", "sha256", "identity", "verdict", "ts_us")
_COLUMNS = ("connector_uuid", "location", *_UPDATED)
#: SQLite's upsert, run through the driver with a tuple per row (SQLAlchemy's parameter processing
#: of dict rows cost a quarter of a batch's record)
_SQLITE_UPSERT = (
    f"INSERT INTO scan_cache ({', '.join(_COLUMNS)}) VALUES ({', '.join('?' for _ in _COLUMNS)})"
    " ON CONFLICT (connector_uuid, location) DO UPDATE SET "
    + ", ".join(f"{name} = excluded.{name}" for name in _UPDATED)
)
_SQLITE_CHUNK = 900  # under SQLite's historic limit of 999 bound parameters per statement
_SQLITE_SELECT = (
    "SELECT location, version, sha256, identity, verdict, ts_us FROM scan_cache"
    " WHERE connector_uuid = ? AND location IN ({marks})"
)


#: PostgreSQL refuses a primary-key entry over about 2,704 bytes, and with it the whole batch
_PG_MAX_LOCATION_BYTES = 2400


def _indexable(rows: list[tuple[Any, ...]]) -> list[tuple[Any, ...]]:
    """The rows PostgreSQL can index; a longer location is not remembered (logged): it is read and
    scanned again on every full scan, as with the cache off."""
    kept = [row for row in rows if len(row[1].encode("utf-8", "surrogatepass")) <= _PG_MAX_LOCATION_BYTES]
    if len(kept) < len(rows):
        log.warning(
            "scan cache: %d location(s) over %d bytes not remembered (scanned again on each full scan)",
            len(rows) - len(kept),
            _PG_MAX_LOCATION_BYTES,
        )
    return kept


class SqlIndex:
    def __init__(self, engine: Engine, client: redis.Redis) -> None:
        self.engine = engine
        self.redis = client
        self._statements: dict[str, Any] = {}
        c = scan_cache.c
        self._select = select(c.location, c.version, c.sha256, c.identity, c.verdict, c.ts_us).where(
            and_(
                c.connector_uuid == bindparam("connector"),
                c.location.in_(bindparam("locations", expanding=True)),
            )
        )

    @classmethod
    def for_url(cls, url: str, client: redis.Redis) -> SqlIndex:
        return cls(shared_engine(url), client)

    def lookup(self, items: Sequence[Key], jobs: Sequence[str]) -> tuple[list[Entry | None], set[str]]:
        forced = forced_jobs(self.redis, jobs)
        by_connector: dict[str, list[str]] = defaultdict(list)
        for (connector, location), job_id in zip(items, jobs, strict=True):
            if job_id not in forced:  # a forced scan's items are scanned: nothing to read
                by_connector[connector].append(location)
        rows: dict[Key, Entry] = {}
        if by_connector:
            with self.engine.connect() as conn:
                for connector, locations in by_connector.items():
                    for location, version, sha256, identity, verdict, ts_us in self._select_rows(
                        conn, connector, locations
                    ):
                        rows[(connector, location)] = Entry(
                            version, sha256, identity, None, ts_us / 1e6, text=verdict
                        )
        return [
            rows.get(key) if job_id not in forced else None for key, job_id in zip(items, jobs, strict=True)
        ], forced

    def _select_rows(self, conn: Connection, connector: str, locations: list[str]) -> Iterable[Sequence[Any]]:
        """The stored rows of ``locations``. SQLite: the driver's own cursor, in chunks under its
        bound-parameter limit (SQLAlchemy's row processing cost half of a batch's lookup)."""
        if conn.dialect.name != "sqlite":
            return conn.execute(self._select, {"connector": connector, "locations": locations})
        found: list[Sequence[Any]] = []
        with closing(conn.connection.driver_connection.cursor()) as cursor:  # type: ignore[union-attr]
            for start in range(0, len(locations), _SQLITE_CHUNK):
                chunk = locations[start : start + _SQLITE_CHUNK]
                cursor.execute(_SQLITE_SELECT.format(marks=",".join("?" * len(chunk))), (connector, *chunk))
                found += cursor.fetchall()
        return found

    def record(self, entries: Sequence[tuple[Key, Entry]]) -> None:
        if not entries:
            return
        latest: dict[Key, tuple[Any, ...]] = {}
        for (connector, location), entry in entries:
            latest[(connector, location)] = (
                connector,
                location,
                entry.version,
                sha256_of(entry.sha256) or "",  # a scanner's other hash must not fail the batch
                entry.identity,
                entry.verdict_json,
                int(entry.at * 1e6),
            )
        rows = list(latest.values())
        with begin_write(self.engine) as conn:
            if conn.dialect.name == "postgresql":
                rows = _indexable(rows)
                if not rows:
                    return
            if conn.dialect.name == "sqlite":
                conn.exec_driver_sql(_SQLITE_UPSERT, rows)
            else:  # executemany: one statement, compiled once
                conn.execute(
                    self._upsert(conn.dialect.name), [dict(zip(_COLUMNS, row, strict=True)) for row in rows]
                )

    def _upsert(self, dialect: str) -> Any:
        """``INSERT … ON CONFLICT (connector_uuid, location) DO UPDATE``, one row's form, kept per dialect."""
        statement = self._statements.get(dialect)
        if statement is None:
            insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
            base = insert(scan_cache)
            statement = self._statements[dialect] = base.on_conflict_do_update(
                index_elements=["connector_uuid", "location"],
                set_={name: getattr(base.excluded, name) for name in _UPDATED},
            )
        return statement
