"""devstack as one package: typed settings from the environment, one module that spawns processes,
the test support re-exporting it, and its ServiceProcess lifecycle."""

from __future__ import annotations

import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from devstack import emulators, procs
from devstack.errors import StackError
from devstack.settings import REPO_ROOT, DevSettings, StackConfig


@pytest.mark.unit
def test_settings_read_the_process_environment_with_pydantic_settings(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("DSX_CORE_PORT", "7123")
    monkeypatch.setenv("DSX_TLS", "yes")
    monkeypatch.setenv("DSX_SYSLOG", "1")
    monkeypatch.setenv("DSX_FS_PORT", "")  # empty counts as unset, as before

    knobs = DevSettings()
    assert (knobs.core_port, knobs.tls, knobs.syslog, knobs.fs_port) == (7123, True, True, 8620)
    cfg = StackConfig.from_env()
    assert (cfg.core_port, cfg.tls, cfg.syslog_port, cfg.scheme) == (7123, True, 5514, "https")


@pytest.mark.unit
@pytest.mark.parametrize(
    ("name", "value", "reason"),
    [
        ("DSX_START_TIMEOUT", "-1", "must be positive"),
        ("DSX_SCAN_CONCURRENCY", "two", "is not a number"),
        ("DSX_CORE_WORKERS", "0", "must be positive"),
        ("DSX_EMULATOR_PORT", "99999", "is not a TCP port"),
    ],
)
def test_a_bad_knob_names_the_variable_its_value_and_why(name: str, value: str, reason: str) -> None:
    with pytest.raises(StackError, match=f"{name}='{value}' {reason}"):
        StackConfig.from_env({name: value})


@pytest.mark.unit
def test_one_module_of_the_repository_spawns_processes() -> None:
    listed = subprocess.run(
        ["git", "ls-files", "--cached", "--others", "--exclude-standard", "*.py"],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()
    spawners = {
        path
        for path in listed
        if (REPO_ROOT / path).is_file()
        and any(
            word in (REPO_ROOT / path).read_text(errors="replace")
            for word in ("Popen", "create_subprocess_exec")
        )
    }
    assert {p for p in spawners if not p.startswith("tests/devstack/")} == {"devstack/procs.py"}


@pytest.mark.unit
def test_the_test_support_is_devstack_under_its_old_names() -> None:
    from tests.support import emulators as support_emulators
    from tests.support import postgres as support_postgres
    from tests.support import procs as support_procs

    assert support_procs.ServiceProcess is procs.ServiceProcess
    assert support_procs.wait_for is procs.wait_for
    assert support_procs.redis_server is emulators.redis_server
    assert support_postgres.postgres_server is emulators.postgres_server
    assert support_emulators.AZURITE_KEY is emulators.AZURITE_KEY
    assert emulators.AZURITE_KEY in emulators.azurite_connection_string("http://127.0.0.1:1")


@pytest.mark.unit
def test_free_ports_lie_below_the_ephemeral_range_and_are_not_handed_out_twice() -> None:
    """A server started later on a port from the ephemeral range can find it taken by an outgoing
    connection's source port (a clean-clone CI run lost a connector that way)."""
    low = int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    ports = [procs.free_port() for _ in range(300)]
    assert len(set(ports)) == len(ports)
    assert all(1024 <= port < low for port in ports)
    held = socket.create_server(("127.0.0.1", ports[0]))  # each was free when handed out
    held.close()


@pytest.mark.integration
def test_a_service_process_is_awaited_and_stopped(tmp_path: Path) -> None:
    port = procs.free_port()
    argv = [sys.executable, "-m", "http.server", str(port), "--bind", "127.0.0.1"]
    service = procs.ServiceProcess("http", argv, None, tmp_path, cwd=tmp_path).start()
    try:
        service.wait_healthy(f"http://127.0.0.1:{port}/", timeout=15)
        assert service.alive()
    finally:
        service.stop()
    assert not service.alive()


@pytest.mark.integration
def test_a_service_that_exits_fails_its_wait_at_once_with_its_log(tmp_path: Path) -> None:
    argv = [sys.executable, "-c", "print('bad config: DSX_NOTHING'); raise SystemExit(3)"]
    service = procs.ServiceProcess("quitter", argv, None, tmp_path).start()
    started = time.monotonic()
    with pytest.raises(RuntimeError, match=r"quitter exited(.|\n)*bad config: DSX_NOTHING"):
        service.wait_ready(lambda: False, timeout=30)
    assert time.monotonic() - started < 10  # not the whole timeout
