"""deploy/compose/make_secrets.py: the compose secrets generated once, kept afterwards, owner-only."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

from deploy.compose import make_secrets
from tests.deploy.conftest import COMPOSE_DIR

pytestmark = pytest.mark.unit


def values(path: Path) -> dict[str, str]:
    return dict(line.split("=", 1) for line in path.read_text().splitlines() if re.match(r"^[A-Z_]+=", line))


def test_the_example_gets_every_required_secret_in_place(tmp_path: Path) -> None:
    env = tmp_path / "core.env"
    env.write_text((COMPOSE_DIR / "core.env.example").read_text())
    lines_before = len(env.read_text().splitlines())
    assert sorted(make_secrets.fill(env)) == sorted(make_secrets.SECRETS)
    found = values(env)
    for name in make_secrets.SECRETS:
        assert re.fullmatch(r"[A-Za-z0-9_-]{32,}", found[name]), name  # URL-safe: it goes into redis://
    assert len(set(found[n] for n in make_secrets.SECRETS)) == len(make_secrets.SECRETS)
    assert len(env.read_text().splitlines()) == lines_before  # the commented lines were replaced
    assert env.stat().st_mode & 0o777 == 0o600


def test_set_values_are_kept_and_a_second_run_changes_nothing(tmp_path: Path) -> None:
    env = tmp_path / "core.env"
    env.write_text("REDIS_PASSWORD=mine\nDSXCONNECT_AUTH__SERVER_KEY=\nOTHER=1\n")
    assert "REDIS_PASSWORD" not in make_secrets.fill(env)
    first = env.read_text()
    assert values(env)["REDIS_PASSWORD"] == "mine" and values(env)["DSXCONNECT_AUTH__SERVER_KEY"]
    assert make_secrets.fill(env) == [] and env.read_text() == first


def test_the_command_copies_the_example_first(tmp_path: Path) -> None:
    (tmp_path / "core.env.example").write_text("# REDIS_PASSWORD=\n")
    run = subprocess.run(
        [sys.executable, str(COMPOSE_DIR / "make_secrets.py"), str(tmp_path / "core.env")],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert run.returncode == 0 and "generated REDIS_PASSWORD" in run.stdout, run.stderr
    assert values(tmp_path / "core.env")["REDIS_PASSWORD"]


def test_the_scanners_env_file_is_made_beside_without_a_secret(tmp_path: Path) -> None:
    """The `dsxa` profile's scanner reads dsxa-lite.env (never core.env): compose needs the file."""
    env = tmp_path / "core.env"
    env.write_text((COMPOSE_DIR / "core.env.example").read_text())
    make_secrets.fill(env)
    scanner = tmp_path / "dsxa-lite.env"
    assert scanner.is_file()
    assert not set(values(scanner)) & set(make_secrets.SECRETS)
    assert not any(value in scanner.read_text() for value in values(env).values() if len(value) > 20)
    # the example beside it is what an admin copies: used when there
    (tmp_path / "dsxa-lite.env.example").write_text((COMPOSE_DIR / "dsxa-lite.env.example").read_text())
    scanner.unlink()
    make_secrets.fill(env)
    assert scanner.read_text() == (COMPOSE_DIR / "dsxa-lite.env.example").read_text()
    # an admin's own file is kept
    scanner.write_text("DSXA_LITE_SCAN_TIMEOUT_S=60\n")
    assert make_secrets.fill(env) == [] and scanner.read_text() == "DSXA_LITE_SCAN_TIMEOUT_S=60\n"
