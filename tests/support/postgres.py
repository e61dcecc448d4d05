"""A real PostgreSQL for tests, from Debian's ``postgresql`` package: ``initdb`` into a temporary
folder and ``pg_ctl`` on a free port. As root it runs as the unprivileged ``postgres`` user (the
server refuses root)."""

from __future__ import annotations

import glob
import os
import shutil
import subprocess
import tempfile
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from tests.support.procs import free_port, wait_for

SUPERUSER = "dsx"


def pg_binary(name: str) -> str:
    """``initdb``/``pg_ctl`` of the newest installed PostgreSQL (Debian keeps them off PATH)."""
    found = sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"), key=_version)
    if found:
        return found[-1]
    on_path = shutil.which(name)
    if on_path:
        return on_path
    raise RuntimeError(f"no {name}: install Debian's postgresql package (scripts/deps/apt-packages.txt)")


def _version(path: str) -> int:
    part = Path(path).parts[-3]
    return int(part) if part.isdigit() else 0


def _as_server_user() -> dict[str, object]:
    if os.geteuid() != 0:
        return {}
    import pwd

    entry = pwd.getpwnam("postgres")
    return {"user": entry.pw_uid, "group": entry.pw_gid, "extra_groups": []}


@contextmanager
def postgres_server() -> Iterator[str]:
    """A running PostgreSQL; yields the URL of its ``postgres`` database (user ``dsx``, trust auth)."""
    base = Path(tempfile.mkdtemp(prefix="dsx-pg-"))
    data, port = base / "data", free_port()
    run_as = _as_server_user()
    if run_as:
        os.chown(base, int(run_as["user"]), int(run_as["group"]))  # type: ignore[call-overload]
    env = {k: v for k, v in os.environ.items() if not k.startswith("PG")} | {"LC_ALL": "C"}
    common = {"env": env, "check": True, "capture_output": True, "timeout": 120, **run_as}
    try:
        subprocess.run(  # type: ignore[call-overload]
            [
                pg_binary("initdb"),
                "-D",
                str(data),
                "-U",
                SUPERUSER,
                "--auth=trust",
                "-E",
                "UTF8",
                "--no-locale",
            ],
            **common,
        )
        options = (
            f"-p {port} -k {base} -c listen_addresses=127.0.0.1 -c fsync=off -c synchronous_commit=off"
            " -c full_page_writes=off -c max_connections=200"
        )
        subprocess.run(  # type: ignore[call-overload]
            [
                pg_binary("pg_ctl"),
                "-D",
                str(data),
                "-o",
                options,
                "-l",
                str(base / "server.log"),
                "-w",
                "start",
            ],
            **common,
        )
        url = f"postgresql://{SUPERUSER}@127.0.0.1:{port}/postgres"
        wait_for(lambda: _ping(url), timeout=30, what="postgresql")
        yield url
    finally:
        subprocess.run(  # type: ignore[call-overload]
            [pg_binary("pg_ctl"), "-D", str(data), "-m", "immediate", "-w", "stop"],
            env=env, capture_output=True, timeout=60, **run_as,
        )  # fmt: skip
        shutil.rmtree(base, ignore_errors=True)


def _ping(url: str) -> bool:
    import psycopg

    with psycopg.connect(url, connect_timeout=2) as conn:
        return conn.execute("SELECT 1").fetchone() == (1,)


def create_database(server_url: str, name: str | None = None) -> str:
    """A new empty database on the server; returns its URL."""
    import psycopg

    name = name or "t_" + uuid.uuid4().hex[:12]
    with psycopg.connect(server_url, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    return server_url.rsplit("/", 1)[0] + "/" + name
