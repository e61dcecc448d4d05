"""Bad metrics settings stop a process at start, naming the variable."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from dsx_connect.settings import Settings
from shared.settings import SettingsError, load_settings

pytestmark = pytest.mark.unit


def test_a_multiproc_dir_that_cannot_be_made_stops_the_process(tmp_path: Path) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    env = {**os.environ, "PROMETHEUS_MULTIPROC_DIR": str(blocker / "prometheus")}
    run = subprocess.run(
        [sys.executable, "-c", "import dsx_connect.metrics.instruments"],
        env=env, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert run.returncode != 0
    assert (
        f"PROMETHEUS_MULTIPROC_DIR={blocker / 'prometheus'}: cannot create the metrics folder" in run.stderr
    )


def test_a_missing_multiproc_dir_is_created(tmp_path: Path) -> None:
    folder = tmp_path / "new" / "prometheus"
    env = {**os.environ, "PROMETHEUS_MULTIPROC_DIR": str(folder)}
    run = subprocess.run(
        [sys.executable, "-c", "import dsx_connect.metrics.instruments"],
        env=env, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert run.returncode == 0, run.stderr
    assert folder.is_dir() and any(folder.iterdir())  # the process's values, at zero


@pytest.mark.parametrize(
    ("name", "value"),
    [("DSXCONNECT_METRICS__WORKER_PORT", "70000"), ("DSXCONNECT_METRICS__HISTORY_HOURS", "0")],
)
def test_bad_metrics_settings_name_the_variable(
    monkeypatch: pytest.MonkeyPatch, name: str, value: str
) -> None:
    monkeypatch.setenv(name, value)
    with pytest.raises(SettingsError) as raised:
        load_settings(Settings)
    assert f"{name}:" in str(raised.value)
