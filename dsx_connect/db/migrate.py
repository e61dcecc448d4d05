"""Schema upgrades with the Alembic revisions shipped in ``dsx_connect/db/migrations``.

Several API replicas may start at once: an upgrade holds a lock first (a PostgreSQL advisory lock,
or a lock file beside a SQLite database), so one upgrades while the others wait and find nothing
left to do.
"""

from __future__ import annotations

import fcntl
import logging
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Connection, text

from dsx_connect.db.engine import make_engine, sqlite_path

log = logging.getLogger(__name__)

MIGRATIONS = Path(__file__).parent / "migrations"
_PG_LOCK_KEY = 0x64_73_78_72  # "dsxr": one advisory lock key for the results schema


def alembic_config(url: str) -> Config:
    """Alembic's configuration for ``url``, without an ini file."""
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    config.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    return config


def head_revision() -> str:
    """The newest revision this code ships."""
    head = ScriptDirectory.from_config(alembic_config("sqlite://")).get_current_head()
    assert head is not None
    return head


def current_revision(url: str) -> str | None:
    """The revision the database at ``url`` is at (None: never migrated)."""
    engine = make_engine(url, timeouts=False)
    try:
        with engine.connect() as conn:
            return MigrationContext.configure(conn).get_current_revision()
    finally:
        engine.dispose()


def upgrade(url: str, revision: str = "head") -> str | None:
    """Upgrade the database at ``url`` to ``revision``, under the migration lock; returns where it is."""
    engine = make_engine(url, timeouts=False)
    config = alembic_config(url)
    try:
        with engine.connect() as conn, _migration_lock(url, conn):
            before = MigrationContext.configure(conn).get_current_revision()
            config.attributes["connection"] = conn
            command.upgrade(config, revision)
            conn.commit()
            after = MigrationContext.configure(conn).get_current_revision()
            if after != before:
                log.info("results history schema upgraded from %s to %s", before or "empty", after)
            return after
    finally:
        engine.dispose()


@contextmanager
def _migration_lock(url: str, conn: Connection) -> Iterator[None]:
    path = sqlite_path(url)
    if conn.dialect.name == "postgresql":
        conn.execute(text("SELECT pg_advisory_lock(:key)"), {"key": _PG_LOCK_KEY})
        conn.commit()
        try:
            yield
        finally:
            conn.rollback()
            conn.execute(text("SELECT pg_advisory_unlock(:key)"), {"key": _PG_LOCK_KEY})
            conn.commit()
    elif path is not None:
        with open(str(path) + ".migrate-lock", "w") as handle:
            fcntl.flock(handle, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)
    else:  # an in-memory database belongs to this process alone
        yield
