"""The durable SQL history of every result (SQLite or PostgreSQL), beside the Redis hot store.

The result step records each stored batch here in one transaction, idempotent on the scan request
id: a redelivered batch inserts nothing twice (``INSERT … ON CONFLICT``), and a failed result (scan
error, failed action) is replaced by a later outcome of the same request, as in Redis.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import Connection, Engine, case, delete, func, literal_column, select, tuple_
from sqlalchemy.exc import DBAPIError
from sqlalchemy.sql import ColumnElement

from dsx_connect.db.engine import begin_write
from dsx_connect.db.schema import LOCATION_HEAD
from dsx_connect.db.schema import scan_results as T
from dsx_connect.results.rows import encode_event, to_row, to_us
from dsx_connect.results.search import Cursor, Page, ResultFilters
from dsx_connect.results.settings import Retention

log = logging.getLogger(__name__)

_COLUMNS = [c.name for c in T.columns if c.name != "id"]
_UPDATED = [name for name in _COLUMNS if name != "scan_request_id"]
#: which stored row a new one for the same request replaces: a failure only (as the Redis store), by
#: a success, or by a failure at least as recent (an older failure parked in the outbox during an
#: outage must not overwrite a later attempt's). ``record`` applies the same rule within a batch.
_REPLACES = (
    "(scan_results.failed OR scan_results.action_status = 'error')"
    " AND scan_results.event != excluded.event"
    " AND (NOT (excluded.failed OR COALESCE(excluded.action_status, '') = 'error')"
    " OR excluded.ts_us >= scan_results.ts_us)"
)
# SQLite: the upsert written once as text: SQLAlchemy's per-row parameter processing cost a fifth of
# a batch (~10 µs a result).
_SQLITE_UPSERT = (
    f"INSERT INTO scan_results ({', '.join(_COLUMNS)}) VALUES ({', '.join('?' for _ in _COLUMNS)})"
    f" ON CONFLICT (scan_request_id) DO UPDATE SET {', '.join(f'{n} = excluded.{n}' for n in _UPDATED)}"
    f" WHERE {_REPLACES}"
)


@dataclass
class JobTotals:
    """What the history knows of one job: counts per verdict, errors, bytes, first and last result."""

    results: int = 0
    verdicts: dict[str, int] = field(default_factory=dict)
    errors: int = 0
    bytes_scanned: int = 0
    actions: dict[str, int] = field(default_factory=dict)
    first_us: int | None = None
    last_us: int | None = None


class SqlHistory:
    """Results in SQL: record batches, search with keyset pages, report per job, apply retention."""

    indexed = frozenset(
        {"since", "until", "verdict", "connector", "job", "sha256", "location_prefix", "threat"}
    )

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    # ---- writing -------------------------------------------------------------------------------

    def record(self, events: Sequence[dict[str, Any]], encoded: Sequence[str] = ()) -> None:
        """Store a batch in one transaction; a request already stored is kept unless it failed.
        ``encoded``: each event's :func:`~dsx_connect.results.rows.encode_event`, when known."""
        if not events:
            return
        rows: dict[str, dict[str, Any]] = {}
        texts = list(encoded) or [encode_event(event) for event in events]
        for event, text in zip(events, texts, strict=True):  # one row per request id, as Redis keeps it:
            row = to_row(event, text)  # the first, unless it failed
            kept = rows.get(row["scan_request_id"])
            if kept is None or (_failed(kept) and (not _failed(row) or row["ts_us"] >= kept["ts_us"])):
                rows[row["scan_request_id"]] = row
        if self.engine.dialect.name == "postgresql":
            self._record_by_copy(list(rows.values()))
            return
        with begin_write(self.engine) as conn:  # SQLite (the only other dialect the history takes)
            conn.exec_driver_sql(_SQLITE_UPSERT, [tuple(r[n] for n in _COLUMNS) for r in rows.values()])

    def _record_by_copy(self, rows: list[dict[str, Any]]) -> None:
        """PostgreSQL: COPY the batch into a session-local staging table, then one INSERT … SELECT
        with the same conflict rule (several times faster than row-by-row inserts)."""
        names = ", ".join(_COLUMNS)
        updates = ", ".join(f"{name} = EXCLUDED.{name}" for name in _UPDATED)
        import psycopg

        with self.engine.begin() as conn:
            driver = conn.connection.driver_connection
            assert driver is not None
            try:
                self._copy_and_insert(driver, rows, names, updates)
            except psycopg.Error as exc:  # the driver's own error: give callers SQLAlchemy's
                raise DBAPIError.instance("COPY scan_results_stage", None, exc, psycopg.Error) from exc

    @staticmethod
    def _copy_and_insert(driver: Any, rows: list[dict[str, Any]], names: str, updates: str) -> None:
        with driver.cursor() as cur:
            cur.execute(
                f"CREATE TEMP TABLE IF NOT EXISTS scan_results_stage ON COMMIT DELETE ROWS AS"
                f" SELECT {names} FROM scan_results WITH NO DATA"
            )
            with cur.copy(f"COPY scan_results_stage ({names}) FROM STDIN") as copy:
                for row in rows:
                    copy.write_row([row[name] for name in _COLUMNS])
            cur.execute(
                f"INSERT INTO scan_results ({names}) SELECT {names} FROM scan_results_stage"
                f" ON CONFLICT (scan_request_id) DO UPDATE SET {updates} WHERE {_REPLACES}"
            )

    # ---- reading -------------------------------------------------------------------------------

    def get(self, request_id: str) -> dict[str, Any] | None:
        with self.engine.connect() as conn:
            raw = conn.execute(select(T.c.event).where(T.c.scan_request_id == request_id)).scalar()
        return json.loads(raw) if raw else None

    def search(self, filters: ResultFilters, cursor: Cursor | None, limit: int, offset: int = 0) -> Page:
        """Newest first, ``limit`` at most, after ``cursor`` (``offset``: the 1.x paging, slow when deep)."""
        with self.engine.connect() as conn:
            return _page(conn, filters, cursor, limit, offset)

    def iter_events(self, filters: ResultFilters, chunk: int = 1000) -> Iterator[dict[str, Any]]:
        """Every matching result, newest first, a page at a time (constant memory), from one snapshot
        of the history: a failure replaced meanwhile takes the newer time of its replacement, above
        the pages already read, and page by page it would be left out altogether."""
        with self.engine.connect() as conn:
            if conn.dialect.name == "sqlite":
                conn.exec_driver_sql("BEGIN")  # the driver starts none for a read; WAL keeps its snapshot
            else:
                conn = conn.execution_options(isolation_level="REPEATABLE READ", postgresql_readonly=True)
            cursor: Cursor | None = None
            while True:
                page = _page(conn, filters, cursor, chunk)
                yield from page.items
                if page.next_cursor is None:
                    return
                cursor = Cursor.decode(page.next_cursor)

    def cheap_total(self, filters: ResultFilters) -> int | None:
        """A job's results are counted (on its index); other totals over millions of rows are not
        cheap, so those pages carry none (see :meth:`count`)."""
        if filters.job is not None and set(filters.active) == {"job"}:
            return self.count(filters)
        return None

    def count(self, filters: ResultFilters) -> int:
        with self.engine.connect() as conn:
            return int(
                conn.execute(select(func.count()).select_from(T).where(*_conditions(filters))).scalar() or 0
            )

    def job_totals(self, job_id: str) -> JobTotals:
        """Counts of one job's results by verdict and applied action, errors, bytes and time span."""
        totals = JobTotals()
        with self.engine.connect() as conn:
            for row in conn.execute(
                select(
                    T.c.verdict,
                    func.count(),
                    func.sum(case((T.c.failed, 1), else_=0)),
                    func.sum(T.c.size_bytes),
                    func.min(T.c.ts_us),
                    func.max(T.c.ts_us),
                )
                .where(T.c.job_id == job_id)
                .group_by(T.c.verdict)
            ):
                verdict, n, errors, size, first, last = row
                totals.verdicts[verdict] = int(n)
                totals.results += int(n)
                totals.errors += int(errors or 0)
                totals.bytes_scanned += int(size or 0)
                totals.first_us = first if totals.first_us is None else min(totals.first_us, first)
                totals.last_us = last if totals.last_us is None else max(totals.last_us, last)
            for action, n in conn.execute(
                select(T.c.action, func.count())
                .where(T.c.job_id == job_id, T.c.action != "")
                .group_by(T.c.action)
            ):
                totals.actions[action] = int(n)
        return totals

    # ---- retention -----------------------------------------------------------------------------

    def apply_retention(
        self,
        retention: Retention,
        batch: int = 5000,
        max_batches: int = 200,
        still_ours: Callable[[], bool] | None = None,
    ) -> int:
        """Delete what ``retention`` no longer keeps, oldest first, ``batch`` rows per transaction;
        at most ``max_batches`` per call (the periodic task comes back for the rest). Before each
        batch ``still_ours`` (renewing the maintenance lock) must say the round still holds it."""
        boundary: tuple[int, int] | None = None
        if retention.count is not None:
            with self.engine.connect() as conn:
                row = conn.execute(
                    select(T.c.ts_us, T.c.id)
                    .order_by(T.c.ts_us.desc(), T.c.id.desc())
                    .offset(retention.count - 1)
                    .limit(1)
                ).first()
            if row is not None:
                boundary = (row.ts_us, row.id)  # the oldest result the count keeps
        if retention.age_s is not None:
            cutoff = (to_us_now() - retention.age_s * 1_000_000, 0)
            boundary = cutoff if boundary is None else max(boundary, cutoff)
        if boundary is None:
            return 0
        deleted = 0
        for _ in range(max_batches):
            if still_ours is not None and not still_ours():
                log.warning("results history retention stopped: the maintenance lock ran out mid-round")
                break
            oldest = (
                select(T.c.id)
                .where(tuple_(T.c.ts_us, T.c.id) < tuple_(*boundary))
                .order_by(T.c.ts_us, T.c.id)
                .limit(batch)
                .scalar_subquery()
            )
            with begin_write(self.engine) as conn:
                n = conn.execute(delete(T).where(T.c.id.in_(oldest))).rowcount or 0
            deleted += n
            if n < batch:
                break
        if deleted:
            log.info("results history retention (%s): deleted %d", retention.describe(), deleted)
        return deleted


def to_us_now() -> int:
    return int(time.time() * 1_000_000)


def _page(
    conn: Connection, filters: ResultFilters, cursor: Cursor | None, limit: int, offset: int = 0
) -> Page:
    conds = _conditions(filters)
    if cursor is not None:
        conds.append(tuple_(T.c.ts_us, T.c.id) < tuple_(cursor.ts_us, cursor.id))
    query = (
        select(T.c.ts_us, T.c.id, T.c.event)
        .where(*conds)
        .order_by(T.c.ts_us.desc(), T.c.id.desc())
        .limit(limit + 1)
        .offset(offset)
    )
    rows = conn.execute(query).all()
    more = len(rows) > limit
    rows = rows[:limit]
    items = [json.loads(row.event) for row in rows]
    last = rows[-1] if rows and more else None
    return Page(items, Cursor(last.ts_us, last.id).encode() if last is not None else None)


def _conditions(filters: ResultFilters) -> list[ColumnElement[bool]]:
    conds: list[ColumnElement[bool]] = []
    if filters.since is not None:
        conds.append(T.c.ts_us >= to_us(filters.since))
    if filters.until is not None:
        conds.append(T.c.ts_us < to_us(filters.until))
    for wanted, column in (
        (filters.verdict, T.c.verdict),
        (filters.connector, T.c.connector_uuid),
        (filters.job, T.c.job_id),
        (filters.sha256, T.c.sha256),
        (filters.threat, T.c.threat_name),
    ):
        if wanted is not None:
            conds.append(column == wanted)
    if filters.location_prefix:
        conds += _location_starts_with(filters.location_prefix)
    return conds


def _location_starts_with(prefix: str) -> list[ColumnElement[bool]]:
    """Byte-wise ranges (C collation on PostgreSQL, BINARY on SQLite): one over the indexed head of
    the location (``LOCATION_HEAD`` characters, written out so the expression matches the index's),
    and, for a longer prefix, one over the whole location, compared on the rows the head found."""
    head = func.substr(T.c.location, literal_column("1"), literal_column(str(LOCATION_HEAD)))
    conds: list[ColumnElement[bool]] = []
    if len(prefix) > LOCATION_HEAD:
        conds.append(head == prefix[:LOCATION_HEAD])
        column: ColumnElement[str] = T.c.location
    else:
        column = head
    conds.append(column >= prefix)
    if (upper := _after_prefix(prefix)) is not None:
        conds.append(column < upper)
    return conds


def _after_prefix(prefix: str) -> str | None:
    """The smallest string greater than every string that starts with ``prefix``; None when there is
    none (the prefix is only U+10FFFF characters: every greater string starts with it)."""
    stem = prefix.rstrip("\U0010ffff")  # the last code point can go no higher: carry into the one before
    if not stem:
        return None
    last = ord(stem[-1]) + 1
    if 0xD800 <= last <= 0xDFFF:  # no surrogates in UTF-8 text
        last = 0xE000
    return stem[:-1] + chr(last)


def _failed(row: dict[str, Any]) -> bool:
    return bool(row["failed"]) or row.get("action_status") == "error"
