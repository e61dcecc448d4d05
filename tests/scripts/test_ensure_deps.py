"""scripts/ensure-deps.sh: `make up` installs only what the stack needs, `make test` the test peers too.

The real script runs against a prepared virtualenv (its install stamp current, so pip is not run) with
`apt-get`, `npm` and `dpkg-query` on the PATH wrapped by recorders that log each call and then run
the real program read-only (`dpkg-query`) or not at all (`apt-get`, `npm` would change this machine).
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support.procs import REPO_ROOT

pytestmark = pytest.mark.integration


@pytest.fixture
def sandbox(tmp_path: Path) -> tuple[dict[str, str], Path]:
    venv = tmp_path / "venv"
    (venv / "bin").mkdir(parents=True)
    (venv / "bin" / "python").symlink_to(sys.executable)
    version = ".".join(map(str, sys.version_info[:3]))
    digest = hashlib.sha256((REPO_ROOT / "pyproject.toml").read_bytes()).hexdigest()
    (venv / ".dsx-deps-stamp").write_text(f"{digest} {version} dev,test,cloud\n")
    calls = tmp_path / "calls.log"
    node = tmp_path / "node"  # a copy: the shimmed npm must not mark the real node_modules installed
    node.mkdir()
    (node / "package.json").write_bytes((REPO_ROOT / "scripts" / "deps" / "package.json").read_bytes())
    shims = tmp_path / "shims"
    shims.mkdir()
    # pyenv finds no 3.12 here: the .venv312 step is skipped (it is `make test`'s, tested by running it)
    for name, real in (("apt-get", ""), ("npm", ""), ("pyenv", ""), ("dpkg-query", "/usr/bin/dpkg-query")):
        run_real = f'exec {real} "$@"' if real else "exit 0"
        if name == "npm":  # as an install leaves it (the stamp is written there)
            run_real = "mkdir -p node_modules\nexit 0"
        (shims / name).write_text(f'#!/bin/sh\necho "{name} $*" >> {calls}\n{run_real}\n')
        (shims / name).chmod(0o755)
    env = {k: v for k, v in os.environ.items() if not k.startswith("DSX")}
    env |= {"PATH": f"{shims}:{env['PATH']}", "VENV": str(venv), "PYTHON312": "/nonexistent/python3.12",
            "VENV312": str(tmp_path / "venv312"), "DSX_NODE_DIR": str(node)}  # fmt: skip
    return env, calls


def run(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["bash", "scripts/ensure-deps.sh", *args], cwd=REPO_ROOT, env=env, capture_output=True, text=True,
        timeout=120,
    )  # fmt: skip


def called(calls: Path) -> list[str]:
    return calls.read_text().splitlines() if calls.exists() else []


def test_up_installs_no_test_peer(sandbox: tuple[dict[str, str], Path]) -> None:
    env, calls = sandbox
    done = run(env, "up")
    assert done.returncode == 0, done.stderr
    assert [c for c in called(calls) if not c.startswith("pyenv")] == []  # no apt-get, npm or package look-up


def test_up_with_syslog_looks_at_rsyslog_only(sandbox: tuple[dict[str, str], Path]) -> None:
    env, calls = sandbox
    done = run({**env, "DSX_SYSLOG": "1"}, "up")
    assert done.returncode == 0, done.stderr
    asked = [line for line in called(calls) if line.startswith("dpkg-query")]
    assert asked and all(line.endswith(" rsyslog") for line in asked), asked
    assert not [line for line in called(calls) if line.startswith(("npm", "apt-get", "pyenv"))]


def test_test_looks_at_every_test_peer(sandbox: tuple[dict[str, str], Path]) -> None:
    env, calls = sandbox
    done = run(env, "test")
    assert done.returncode == 0, done.stderr
    asked = {line.rsplit(" ", 1)[1] for line in called(calls) if line.startswith("dpkg-query")}
    assert {"docker-compose", "rsyslog", "chromium"} <= asked
    assert "no Python 3.12 found: the unit tests run on" in done.stderr
    assert "npm install --no-audit --no-fund --loglevel=error" in called(calls)
