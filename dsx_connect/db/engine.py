"""Engines for the history: SQLite (WAL, waits on a busy database) and PostgreSQL through psycopg 3."""

from __future__ import annotations

import fcntl
import os
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, Engine, create_engine, event
from sqlalchemy.engine import make_url

_engines: dict[tuple[str, int], Engine] = {}
_lock = threading.Lock()

#: how long the history waits for PostgreSQL: to connect, for a lock, for one statement (the
#: largest are a 1,000-row insert and a retention batch, well under a second on a healthy server)
PG_CONNECT_TIMEOUT_S = 5
PG_LOCK_TIMEOUT_MS = 5_000
PG_STATEMENT_TIMEOUT_MS = 60_000


def sqlite_path(url: str) -> Path | None:
    """The database file of a ``sqlite:///path`` URL (None for other URLs or ``:memory:``)."""
    parsed = make_url(url)
    if parsed.get_backend_name() != "sqlite" or not parsed.database or parsed.database == ":memory:":
        return None
    return Path(parsed.database)


def make_engine(url: str, *, timeouts: bool = True) -> Engine:
    """A new engine for ``url`` (a SQLAlchemy URL: ``sqlite:///…`` or ``postgresql+psycopg://…``).

    ``timeouts=False`` (migrations): no lock or statement limit on PostgreSQL, where a replica waits
    for another's upgrade and an index is built over the whole table."""
    path = sqlite_path(url)
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(url, connect_args={"timeout": 30})
        event.listen(engine, "connect", _sqlite_pragmas)
        return engine
    # A stalled server (locked table, hung host) must fail the write, not hold it: the result step
    # parks a failed batch in the Redis outbox and carries on; without limits it waited for ever
    connect_args: dict[str, Any] = {"connect_timeout": PG_CONNECT_TIMEOUT_S}
    if timeouts:
        # added to the URL's own libpq options (a search_path, a provider's endpoint id), which a
        # connect argument of the same name would replace
        given = make_url(url).query.get("options", "")
        given = " ".join(given) if isinstance(given, tuple) else given
        limits = f"-c lock_timeout={PG_LOCK_TIMEOUT_MS} -c statement_timeout={PG_STATEMENT_TIMEOUT_MS}"
        connect_args["options"] = f"{given} {limits}".strip()
    return create_engine(
        url,
        pool_pre_ping=True,
        pool_size=5,
        max_overflow=5,
        pool_timeout=PG_CONNECT_TIMEOUT_S,
        connect_args=connect_args,
    )


def shared_engine(url: str) -> Engine:
    """One engine per URL and process: a pool's connections must never cross a fork (prefork workers)."""
    key = (url, os.getpid())
    with _lock:
        engine = _engines.get(key)
        if engine is None:
            engine = _engines[key] = make_engine(url)
        return engine


#: pages of WAL (4 KiB each) after which a commit checkpoints them into the database
WAL_CHECKPOINT_PAGES = 10_000
WAL_SIZE_LIMIT_BYTES = 64 << 20


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    # WAL: readers (the API) never block the writer (the result worker), and commits are cheap
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA busy_timeout=30000")
    # Checkpoint every ~40 MB of WAL, not SQLite's ~4 MB: each batch of 1,000 results dirties a
    # page of the hash, location and request-id indexes per row (random keys), so at the default
    # nearly every commit ran a checkpoint copying them all back; pages dirtied again before the
    # next checkpoint are copied once. A history insert: 40 -> 34 ms a batch past 50,000 rows.
    cursor.execute(f"PRAGMA wal_autocheckpoint={WAL_CHECKPOINT_PAGES}")
    # and a WAL that grew past that (readers held a checkpoint back) is cut back when it resets
    cursor.execute(f"PRAGMA journal_size_limit={WAL_SIZE_LIMIT_BYTES}")
    cursor.close()


@contextmanager
def begin_write(engine: Engine) -> Iterator[Connection]:
    """``engine.begin()`` for a transaction that writes.

    SQLite lets one writer in at a time and makes the others poll: its busy handler sleeps 1, 2, 5,
    10 … 100 ms between tries, so two API processes storing batches lose time waiting for a lock
    that was free long before. Writers here queue on a lock file beside the database instead
    (``flock``, one open file per process, a thread lock within it) and each is woken as soon as the
    one before it commits. A writer that does not take it (an older process, the ``sqlite3`` shell)
    still meets SQLite's own lock and busy timeout, as before. Other databases: ``engine.begin()``.
    """
    lock = _writer_lock(engine)
    if lock is None:
        with engine.begin() as conn:
            yield conn
        return
    in_process, fd = lock
    with in_process:
        fcntl.flock(fd, fcntl.LOCK_EX)
        try:
            with engine.begin() as conn:
                yield conn
        finally:
            fcntl.flock(fd, fcntl.LOCK_UN)


_writer_locks: dict[tuple[str, int], tuple[threading.Lock, int] | None] = {}


def _writer_lock(engine: Engine) -> tuple[threading.Lock, int] | None:
    """This process's lock on ``<database>.writer-lock`` (None: not a SQLite file, or no lock file
    can be made there, and SQLite's busy timeout alone orders the writers)."""
    database = engine.url.database
    if engine.dialect.name != "sqlite" or not database or database == ":memory:":
        return None
    key = (database, os.getpid())  # an open file shared across a fork would share its lock
    with _lock:
        if key not in _writer_locks:
            try:
                fd = os.open(f"{database}.writer-lock", os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
            except OSError:
                _writer_locks[key] = None
            else:
                _writer_locks[key] = (threading.Lock(), fd)
        return _writer_locks[key]
