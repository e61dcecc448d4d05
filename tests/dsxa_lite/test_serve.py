"""``python -m dsxa_lite``: binds loopback by default, takes --host/--port, warns when exposed."""

from __future__ import annotations

import json
from pathlib import Path

import httpx
import pytest

from tests.support.procs import PYTHON, ServiceProcess, base_env, free_port, wait_for

pytestmark = pytest.mark.integration


def serve(logs_dir: Path, name: str, args: list[str], **env: str) -> ServiceProcess:
    return ServiceProcess(name, [PYTHON, "-m", "dsxa_lite", "serve", *args], base_env(**env), logs_dir)


def warnings_in(process: ServiceProcess) -> list[str]:
    lines = process.log_path.read_text(errors="replace").splitlines()
    return [
        entry["msg"]
        for entry in map(json.loads, filter(lambda line: line.startswith("{"), lines))
        if entry["level"] == "warning"
    ]


def test_default_bind_is_loopback_without_warning(logs_dir: Path) -> None:
    port = free_port()
    process = serve(logs_dir, f"dsxa-lite-serve-{port}", [], DSXA_LITE_PORT=str(port))
    process.start()
    try:
        process.wait_healthy(f"http://127.0.0.1:{port}/healthz")
        assert not [w for w in warnings_in(process) if "without a token" in w]
    finally:
        process.stop()


def test_public_bind_without_token_warns_at_start(logs_dir: Path) -> None:
    port = free_port()
    process = serve(logs_dir, f"dsxa-lite-serve-public-{port}", ["--host", "0.0.0.0", "--port", str(port)])
    process.start()
    try:
        process.wait_healthy(f"http://127.0.0.1:{port}/healthz")
        wait_for(
            lambda: [w for w in warnings_in(process) if "0.0.0.0 without a token" in w],
            10,
            what="the warning",
        )
        assert httpx.get(f"http://127.0.0.1:{port}/version").status_code == 200
    finally:
        process.stop()
