"""Process start: a bad setting stops uvicorn before it listens, naming the variable."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.support.procs import ServiceProcess, base_env, free_port, uvicorn_argv

pytestmark = pytest.mark.integration


@pytest.mark.parametrize(
    ("name", "value"),
    [("DSXA_LITE_MAX_FILE_SIZE_BYTES", "abc"), ("DSXA_LITE_BLOCKLIST", "123")],
)
def test_bad_setting_stops_start_naming_the_variable(logs_dir: Path, name: str, value: str) -> None:
    port = free_port()
    process = ServiceProcess(
        f"dsxa-lite-bad-{name}", uvicorn_argv("dsxa_lite.app:app", port), base_env(**{name: value}), logs_dir
    )
    process.start()
    try:
        assert process.proc is not None
        returncode = process.proc.wait(timeout=60)
    finally:
        process.stop()
    assert returncode != 0
    log = process.log_tail(20)
    assert f"{name}:" in log
    assert "invalid configuration" in log
