"""Filesystem settings: a bad value stops the connector naming the variable."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from connectors.filesystem.settings import FilesystemSettings, get_settings
from shared.settings import SettingsError, load_settings
from tests.support.procs import REPO_ROOT, base_env, free_port, uvicorn_argv


@pytest.mark.unit
def test_defaults_match_the_one_x_deployments(asset: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DSXCONNECTOR_ASSET", str(asset))
    get_settings.cache_clear()
    s = get_settings()
    assert s is get_settings()  # cached
    get_settings.cache_clear()
    assert (s.name, s.port, s.route_prefix) == ("filesystem-connector", 8620, "/filesystem-connector")
    assert s.connector_url == "http://127.0.0.1:8620/filesystem-connector"
    assert s.asset == str(asset.resolve()) and s.item_action == "nothing"


@pytest.mark.unit
@pytest.mark.parametrize(
    ("env", "variable"),
    [
        ({"DSXCONNECTOR_ASSET": "/nonexistent"}, "DSXCONNECTOR_ASSET"),
        ({}, "DSXCONNECTOR_ASSET"),
        ({"DSXCONNECTOR_ITEM_ACTION": "tag"}, "DSXCONNECTOR_ITEM_ACTION"),
        ({"DSXCONNECTOR_ITEM_ACTION_MOVE_METAINFO": ".."}, "DSXCONNECTOR_ITEM_ACTION_MOVE_METAINFO"),
        ({"DSXCONNECTOR_MONITOR_POLL_INTERVAL_MS": "5"}, "DSXCONNECTOR_MONITOR_POLL_INTERVAL_MS"),
    ],
)
def test_bad_settings_name_the_variable(
    asset: Path, monkeypatch: pytest.MonkeyPatch, env: dict[str, str], variable: str
) -> None:
    if env:
        monkeypatch.setenv("DSXCONNECTOR_ASSET", str(asset))
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    with pytest.raises(SettingsError) as raised:
        load_settings(FilesystemSettings)
    assert variable in str(raised.value)


@pytest.mark.integration
def test_the_service_refuses_to_start_on_a_missing_asset() -> None:
    argv = uvicorn_argv("connectors.filesystem.app:app", free_port())
    done = subprocess.run(
        argv, env=base_env(DSXCONNECTOR_ASSET="/nonexistent"), cwd=REPO_ROOT, capture_output=True, timeout=60
    )
    assert done.returncode != 0
    assert b"DSXCONNECTOR_ASSET" in done.stdout + done.stderr
