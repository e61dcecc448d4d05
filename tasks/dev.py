"""Developer tasks: the local stack (through :mod:`devstack`), the Makefile's test and lint targets,
``inv bench``, ``inv enrollment-token``, ``inv db-upgrade``."""

from __future__ import annotations

import os
import shlex
import sys

from invoke import Context, task

from tasks.common import ROOT


def _make(c: Context, target: str, pytest_args: str = "") -> None:
    extra = f" PYTEST_ARGS={shlex.quote(pytest_args)}" if pytest_args else ""
    c.run(f"make -C {shlex.quote(str(ROOT))} --no-print-directory {target}{extra}", pty=False)


def _stack(command: str) -> None:
    """One command of the local stack, in this process (``python -m devstack``); its exit status."""
    from devstack.__main__ import main

    code = main([command])
    if code:
        sys.exit(code)


@task
def up(c):
    """Start the local stack and full-scan a sample folder (make up)."""
    c.run(f"bash {shlex.quote(str(ROOT / 'scripts' / 'ensure-deps.sh'))} up", pty=False)
    _stack("up")


@task
def down(c):
    """Stop what `up` started (make down)."""
    _stack("down")


@task
def status(c):
    """Health of each component (make status)."""
    _stack("status")


@task(help={"args": "extra pytest arguments, e.g. '-k jobs -x'"})
def test(c, args=""):
    """The whole test suite (make test)."""
    _make(c, "test", args)


@task(help={"args": "extra pytest arguments"})
def test_unit(c, args=""):
    """Fast tests, marker unit (make test-unit)."""
    _make(c, "test-unit", args)


@task
def lint(c):
    """ruff check (make lint)."""
    _make(c, "lint")


@task
def format(c):
    """ruff format (make format)."""
    _make(c, "format")


@task
def type_check(c):
    """mypy (make type-check)."""
    _make(c, "type-check")


@task(
    help={
        "connector_name": "bind the token to this connector name",
        "connector_uuid": "bind the token to this connector uuid",
        "expires_in": "seconds until it expires (default: never)",
        "label": "a note shown in the list",
        "list_tokens": "list the scoped tokens instead of minting one",
        "revoke": "revoke the token with this id instead of minting one",
        "url": "the core (default DSXCONNECT_URL or http://127.0.0.1:8586)",
    }
)
def enrollment_token(
    c, connector_name="", connector_uuid="", expires_in=0, label="", list_tokens=False, revoke="", url=""
):
    """Mint (or list, revoke) an enrollment token scoped to one connector (dsx_connect.auth.cli)."""
    python = ROOT / os.environ.get("VENV", ".venv") / "bin" / "python"
    argv = [str(python), "-m", "dsx_connect.auth.cli"] + (["--url", url] if url else [])
    if list_tokens:
        argv.append("list")
    elif revoke:
        argv += ["revoke", revoke]
    else:
        argv += ["mint"] + (["--connector-name", connector_name] if connector_name else [])
        argv += ["--connector-uuid", connector_uuid] if connector_uuid else []
        argv += (["--expires-in", str(expires_in)] if expires_in else []) + (
            ["--label", label] if label else []
        )
    c.run(shlex.join(argv), pty=False, env={"PYTHONPATH": str(ROOT)})


@task(
    help={
        "args": "arguments for scripts/bench.py (or scripts/bench_results.py with --results-db)",
        "results_db": "sqlite or postgresql: benchmark the results history instead (scripts/bench_results.py)",
        "files": "files to scan, of 1-4 KiB unless args say otherwise (memory: peak RSS and Redis peak)",
        "client": "the workers' hot-path transport: http1 (default) or aiohttp (DSXCONNECT_SCANNER__CLIENT)",
    }
)
def bench(c, args="", results_db="", files=0, client=""):
    """Throughput benchmark (make bench): installs what it needs (wrk included), runs scripts/bench.py;
    with --results-db, the results history's benchmark (scripts/bench_results.py)."""
    if results_db:
        _make(c, "deps")
        python = ROOT / os.environ.get("VENV", ".venv") / "bin" / "python"
        script = ROOT / "scripts" / "bench_results.py"
        c.run(
            f"{shlex.quote(str(python))} {shlex.quote(str(script))} --results-db {shlex.quote(results_db)} {args}",
            pty=False,
        )
        return
    args = f"--files {int(files)} --min-kib 1 --max-kib 4 {args}" if files else args  # small files
    args = f"--client {shlex.quote(client)} {args}" if client else args
    c.run(
        f"make -C {shlex.quote(str(ROOT))} --no-print-directory bench BENCH_ARGS={shlex.quote(args)}",
        pty=False,
    )


@task(
    help={
        "url": "the database (default: DSXCONNECT_RESULTS_DB, e.g. postgresql://user:pass@host/db)",
        "revision": "target revision (default: head)",
    }
)
def db_upgrade(c, url="", revision="head"):
    """Upgrade the results history's schema (the Alembic revisions shipped in dsx_connect/db)."""
    from dsx_connect.db.migrate import current_revision, upgrade
    from dsx_connect.results.settings import ResultsDbSettings

    value = url or os.environ.get("DSXCONNECT_RESULTS_DB", "")
    try:
        config = ResultsDbSettings(url=value or "redis")
    except ValueError as exc:
        sys.exit(f"DSXCONNECT_RESULTS_DB: {exc}")
    if not config.durable:
        sys.exit(
            "no SQL history to upgrade: set DSXCONNECT_RESULTS_DB (or --url) to sqlite:///… or postgresql://…"
        )
    before = current_revision(config.sql_url)
    after = upgrade(config.sql_url, revision)
    print(f"results history: {before or 'empty'} -> {after}")
