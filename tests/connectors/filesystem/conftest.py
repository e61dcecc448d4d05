"""Fixtures of the filesystem connector tests: an asset tree, settings, a real connector process."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from connectors.filesystem.connector import FilesystemConnector
from connectors.filesystem.settings import FilesystemSettings
from tests.shared.connector.core_receiver import fake_core  # noqa: F401  (a fixture)
from tests.support.auth import CONNECTOR_KEY_ID, CONNECTOR_SECRET
from tests.support.procs import ServiceProcess, base_env, free_port, uvicorn_argv

TREE = {
    "top.txt": b"top",
    "docs/report.pdf": b"%PDF-1.4 report",
    "docs/notes.txt": b"notes",
    "docs/deep/er/file.pdf": b"%PDF deep",
    "tmp/cache.bin": b"\x00\x01",
    "dsxconnect-quarantine/old/evil.exe": b"MZ quarantined",
}


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for key in list(os.environ):
        if key.startswith(("DSXCONNECTOR_", "DSXCONNECT_")):
            monkeypatch.delenv(key)


@pytest.fixture
def asset(tmp_path: Path) -> Path:
    """A small tree with a quarantine folder inside it."""
    root = tmp_path / "asset"
    for location, data in TREE.items():
        (root / location).parent.mkdir(parents=True, exist_ok=True)
        (root / location).write_bytes(data)
    return root


@pytest.fixture
def make_connector(asset: Path) -> Callable[..., FilesystemConnector]:
    def make(**settings: object) -> FilesystemConnector:
        return FilesystemConnector(FilesystemSettings(asset=str(asset), **settings))  # type: ignore[arg-type]

    return make


@contextmanager
def connector_process(asset: Path, core_url: str, logs_dir: Path, **env: str) -> Iterator[str]:
    """The real connector under uvicorn on a free port; yields its base URL (with the route prefix)."""
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    settings = {
        "DSXCONNECTOR_ASSET": str(asset),
        "DSXCONNECTOR_DSX_CONNECT_URL": core_url,
        "DSXCONNECTOR_CONNECTOR_URL": f"{base}/filesystem-connector",
        "DSXCONNECTOR_HEARTBEAT_INTERVAL_S": "0.3",
        "DSXCONNECTOR_JOB_CONTROL_POLL_S": "0.05",
        "DSXCONNECTOR_JOB_CONTROL_EVERY_BATCHES": "1",
        "DSXCONNECTOR_MONITOR_DEBOUNCE_MS": "100",
        # a pre-provisioned DSX-HMAC pair: the fake core hands none out, tests sign with it
        "DSXCONNECTOR_AUTH__HMAC_KEY_ID": CONNECTOR_KEY_ID,
        "DSXCONNECTOR_AUTH__HMAC_SECRET": CONNECTOR_SECRET,
    }
    proc = ServiceProcess(
        f"filesystem-connector-{port}",
        uvicorn_argv("connectors.filesystem.app:app", port),
        base_env(**(settings | env)),
        logs_dir,
    ).start()
    try:
        proc.wait_healthy(f"{base}/alive")
        yield f"{base}/filesystem-connector"
    finally:
        proc.stop()
