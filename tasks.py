"""invoke tasks (`inv --list`): the Makefile's targets, plus `inv bench`.

The Makefile stays the one place that says how each step runs; these tasks call it.
"""

from __future__ import annotations

import os
import shlex
import sys
from pathlib import Path

from invoke import Context, task

ROOT = Path(__file__).resolve().parent


def _make(c: Context, target: str, pytest_args: str = "") -> None:
    extra = f" PYTEST_ARGS={shlex.quote(pytest_args)}" if pytest_args else ""
    c.run(f"make -C {shlex.quote(str(ROOT))} --no-print-directory {target}{extra}", pty=False)


@task
def up(c):
    """Start the local stack and full-scan a sample folder (make up)."""
    _make(c, "up")


@task
def down(c):
    """Stop what `up` started (make down)."""
    _make(c, "down")


@task
def status(c):
    """Health of each component (make status)."""
    _make(c, "status")


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


@task(help={"args": "arguments for scripts/bench.py"})
def bench(c, args=""):
    """Throughput benchmark: runs scripts/bench.py with the project's virtualenv."""
    script = ROOT / "scripts" / "bench.py"
    if not script.exists():
        sys.exit("scripts/bench.py does not exist yet")
    _make(c, "deps")
    python = ROOT / os.environ.get("VENV", ".venv") / "bin" / "python"
    c.run(f"{shlex.quote(str(python))} {shlex.quote(str(script))} {args}", pty=False)
