"""A real PostgreSQL for tests (Debian's ``initdb``/``pg_ctl`` on a free port): started by
:mod:`devstack.emulators`; this module keeps the names the fixtures import."""

from __future__ import annotations

from devstack.emulators import PG_SUPERUSER as SUPERUSER
from devstack.emulators import create_database, pg_binary, postgres_server

__all__ = ["SUPERUSER", "create_database", "pg_binary", "postgres_server"]
