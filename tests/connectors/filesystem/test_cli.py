"""``python -m connectors.filesystem``: one-shot commands with no core."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from tests.support.procs import PYTHON, REPO_ROOT, base_env

pytestmark = pytest.mark.integration


def run(asset: Path, *args: str, **env: str) -> subprocess.CompletedProcess[bytes]:
    argv = [PYTHON, "-m", "connectors.filesystem", *args]
    return subprocess.run(
        argv,
        env=base_env(DSXCONNECTOR_ASSET=str(asset), **env),
        cwd=REPO_ROOT,
        capture_output=True,
        timeout=60,
    )


def test_list_estimate_and_read_work_without_a_core(asset: Path) -> None:
    listed = run(asset, "list", DSXCONNECTOR_FILTER="*.pdf")
    assert listed.returncode == 0
    assert sorted(listed.stdout.decode().split()) == ["docs/deep/er/file.pdf", "docs/report.pdf"]
    assert b'"count": 5' in run(asset, "estimate").stdout
    assert run(asset, "read", "docs/notes.txt").stdout == b"notes"
    refused = run(asset, "read", "../../etc/passwd")
    assert refused.returncode == 1 and b"escapes the asset" in refused.stderr
