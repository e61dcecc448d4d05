"""Engines for the history: SQLite (WAL, waits on a busy database) and PostgreSQL through psycopg 3."""

from __future__ import annotations

import os
import threading
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.engine import make_url

_engines: dict[tuple[str, int], Engine] = {}
_lock = threading.Lock()


def sqlite_path(url: str) -> Path | None:
    """The database file of a ``sqlite:///path`` URL (None for other URLs or ``:memory:``)."""
    parsed = make_url(url)
    if parsed.get_backend_name() != "sqlite" or not parsed.database or parsed.database == ":memory:":
        return None
    return Path(parsed.database)


def make_engine(url: str) -> Engine:
    """A new engine for ``url`` (a SQLAlchemy URL: ``sqlite:///…`` or ``postgresql+psycopg://…``)."""
    path = sqlite_path(url)
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(url, connect_args={"timeout": 30})
        event.listen(engine, "connect", _sqlite_pragmas)
        return engine
    return create_engine(url, pool_pre_ping=True, pool_size=5, max_overflow=5)


def shared_engine(url: str) -> Engine:
    """One engine per URL and process: a pool's connections must never cross a fork (prefork workers)."""
    key = (url, os.getpid())
    with _lock:
        engine = _engines.get(key)
        if engine is None:
            engine = _engines[key] = make_engine(url)
        return engine


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    # WAL: readers (the API) never block the writer (the result worker), and commits are cheap
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA busy_timeout=30000")
    cursor.close()
