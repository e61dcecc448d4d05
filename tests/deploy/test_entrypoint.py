"""deploy/docker/entrypoint.py and healthcheck.py: roles, worker pools, secret files, probes."""

from __future__ import annotations

import http.server
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from deploy.docker import entrypoint, healthcheck
from tests.deploy.conftest import REPO
from tests.support.procs import ServiceProcess, base_env, wait_for


def pool_of(argv: list[str]) -> tuple[str, str | None]:
    pool = argv[argv.index("--pool") + 1]
    concurrency = argv[argv.index("--concurrency") + 1] if "--concurrency" in argv else None
    return pool, concurrency


@pytest.mark.unit
@pytest.mark.parametrize(
    ("args", "queue", "pool", "concurrency"),
    [
        (["scan_request_queue"], "scan_request_queue", "prefork", "2"),
        (["scan", "--concurrency", "6"], "scan_request_queue", "prefork", "6"),
        (["verdict_action_queue"], "verdict_action_queue", "solo", None),
        (["result"], "scan_result_queue", "solo", None),
        (
            ["scan_result_notification_queue", "--concurrency", "4"],
            "scan_result_notification_queue",
            "solo",
            None,
        ),
        (
            ["scan_result_queue", "--pool", "prefork", "--concurrency", "3"],
            "scan_result_queue",
            "prefork",
            "3",
        ),
    ],
)
def test_worker_command_matches_the_local_stack(
    args: list[str], queue: str, pool: str, concurrency: str | None
) -> None:
    """Pools as devstack.graph runs them: prefork x2 for scans, solo for the light queues."""
    argv = entrypoint.worker_argv(args, {"DSXCONNECT_LOG_LEVEL": "warning"}, hostname="box")
    assert argv[:6] == [sys.executable, "-m", "celery", "-A", entrypoint.CELERY_APP, "worker"]
    assert argv[argv.index("-Q") + 1] == queue
    short = {v: k for k, v in entrypoint.WORKER_QUEUES.items()}[queue]
    assert argv[argv.index("-n") + 1] == f"{short}@box"
    assert argv[argv.index("--loglevel") + 1] == "WARNING"
    assert pool_of(argv) == (pool, concurrency)
    assert argv.count("--pool") == 1
    for flag in ("--without-gossip", "--without-mingle", "--without-heartbeat"):  # as devstack.graph
        assert argv.count(flag) == 1


@pytest.mark.unit
def test_worker_queues_are_the_spec_queues() -> None:
    from dsx_connect.queues import ALL_QUEUES

    assert set(entrypoint.WORKER_QUEUES.values()) == set(ALL_QUEUES)


@pytest.mark.unit
def test_unknown_queue_is_refused() -> None:
    with pytest.raises(entrypoint.EntrypointError, match="unknown queue 'scans'"):
        entrypoint.worker_argv(["scans"], {})
    with pytest.raises(entrypoint.EntrypointError, match="name a queue"):
        entrypoint.worker_argv([], {})


@pytest.mark.unit
def test_api_command_plain_and_tls(tmp_path: Path) -> None:
    role, argv = entrypoint.command([], {})
    assert role == "api"
    assert argv[argv.index("--port") + 1] == "8586" and "--ssl-certfile" not in argv
    cert, key = tmp_path / "tls.crt", tmp_path / "tls.key"
    cert.write_text("c")
    key.write_text("k")
    tls = {
        "DSXCONNECT_USE_TLS": "true",
        "DSXCONNECT_TLS_CERTFILE": str(cert),
        "DSXCONNECT_TLS_KEYFILE": str(key),
    }
    _, argv = entrypoint.command(["api"], tls)
    assert argv[argv.index("--ssl-certfile") + 1] == str(cert)
    assert argv[argv.index("--ssl-keyfile") + 1] == str(key)
    with pytest.raises(entrypoint.EntrypointError, match="DSXCONNECT_TLS_CERTFILE"):
        entrypoint.command(["api"], {"USE_TLS": "1"})
    with pytest.raises(entrypoint.EntrypointError, match="no such file"):
        entrypoint.command(["api"], tls | {"DSXCONNECT_TLS_KEYFILE": str(tmp_path / "missing.key")})


@pytest.mark.unit
def test_api_workers_come_from_the_setting() -> None:
    _, argv = entrypoint.command(["api"], {})
    assert "--workers" not in argv
    _, argv = entrypoint.command(["api"], {"DSXCONNECT_API_WORKERS": "3"})
    assert argv[argv.index("--workers") + 1] == "3"
    for bad in ("0", "two", "-1", "65"):
        with pytest.raises(entrypoint.EntrypointError, match=f"DSXCONNECT_API_WORKERS='{bad}'"):
            entrypoint.command(["api"], {"DSXCONNECT_API_WORKERS": bad})


@pytest.mark.unit
def test_other_commands_run_as_given() -> None:
    assert entrypoint.command(["python", "-m", "dsxa_lite"], {}) == ("other", ["python", "-m", "dsxa_lite"])


@pytest.mark.unit
def test_secret_files_fill_only_secret_variables(tmp_path: Path) -> None:
    token = tmp_path / "token"
    token.write_text("s3cret\n")
    env = {
        "DSXCONNECT_SCANNER__AUTH_TOKEN_FILE": str(token),
        "DSXCONNECTOR_ENROLLMENT_TOKEN": "kept",
        "DSXCONNECTOR_ENROLLMENT_TOKEN_FILE": str(token),
        "DSXA_LITE_BLOCKLIST_FILE": str(token),  # a path setting, not a secret
    }
    assert entrypoint.resolve_secret_files(env) == ["DSXCONNECT_SCANNER__AUTH_TOKEN"]
    assert env["DSXCONNECT_SCANNER__AUTH_TOKEN"] == "s3cret"
    assert env["DSXCONNECTOR_ENROLLMENT_TOKEN"] == "kept"
    assert "DSXA_LITE_BLOCKLIST" not in env
    with pytest.raises(entrypoint.EntrypointError, match="DSXCONNECT_AUTH__API_KEYS_FILE"):
        entrypoint.resolve_secret_files({"DSXCONNECT_AUTH__API_KEYS_FILE": str(tmp_path / "nope")})


@pytest.mark.unit
def test_main_reports_a_bad_configuration_without_a_traceback(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("DSXCONNECT_USE_TLS", "true")
    monkeypatch.delenv("DSXCONNECT_TLS_CERTFILE", raising=False)
    assert entrypoint.main(["api"]) == 2
    assert "DSXCONNECT_TLS_CERTFILE" in capsys.readouterr().err


@pytest.mark.unit
@pytest.mark.parametrize("args", [["api"], ["worker", "scan"]])
def test_the_core_refuses_to_start_without_the_server_key(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], tmp_path: Path, args: list[str]
) -> None:
    for name in (
        "DSXCONNECT_AUTH__ENABLED",
        "DSXCONNECT_AUTH__SERVER_KEY",
        "DSXCONNECT_AUTH__SERVER_KEY_FILE",
    ):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.delenv("DSXCONNECT_USE_TLS", raising=False)
    assert entrypoint.main(args) == 2
    assert "DSXCONNECT_AUTH__SERVER_KEY is required" in capsys.readouterr().err
    # from a secret file it is there; and with auth off it is not needed
    key = tmp_path / "server_key"
    key.write_text("k" * 40)
    env = {"DSXCONNECT_AUTH__SERVER_KEY_FILE": str(key)}
    assert entrypoint.resolve_secret_files(env) == ["DSXCONNECT_AUTH__SERVER_KEY"]
    entrypoint.require_server_key(env)
    entrypoint.require_server_key({"DSXCONNECT_AUTH__ENABLED": "false"})
    with pytest.raises(entrypoint.EntrypointError):
        entrypoint.require_server_key({"DSXCONNECT_AUTH__SERVER_KEY": "  "})


@pytest.fixture
def http_server() -> Iterator[int]:
    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(200 if self.path == "/healthz" else 503)
            self.end_headers()

        def log_message(self, *_: object) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server.server_address[1]
    server.shutdown()


@pytest.mark.unit
def test_http_healthcheck(http_server: int, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("DSX_HEALTH_TLS_ENV", raising=False)
    assert healthcheck.main(["http", str(http_server), "/healthz"]) == 0
    assert healthcheck.main(["http", str(http_server), "/readyz"]) == 1
    monkeypatch.setenv("DSX_HEALTH_TLS_ENV", "DSXCONNECTOR_USE_TLS")
    monkeypatch.setenv("DSXCONNECTOR_USE_TLS", "true")  # https against a plain server: unhealthy
    assert healthcheck.main(["http", str(http_server), "/healthz"]) == 1


@pytest.mark.integration
def test_worker_healthcheck_pings_its_own_node(redis_url: str, tmp_path: Path) -> None:
    """A real worker started by the entrypoint answers dsx-healthcheck; an absent node does not."""
    role_file = tmp_path / "role"
    env = base_env(
        DSXCONNECT_REDIS_URL=redis_url,
        DSX_ROLE_FILE=str(role_file),
        DSXCONNECT_LOG_LEVEL="INFO",
        DSX_HEALTHCHECK_TIMEOUT="3",
    )
    argv = [sys.executable, str(REPO / "deploy/docker/entrypoint.py"), "worker", "action"]
    worker = ServiceProcess("entrypoint-worker", argv, env, tmp_path).start()
    check = [sys.executable, str(REPO / "deploy/docker/healthcheck.py")]
    try:
        wait_for(
            lambda: "ready." in worker.log_path.read_text(),
            timeout=30,
            what=f"the worker:\n{worker.log_tail()}",
        )
        assert role_file.read_text().startswith("worker action@")
        result = subprocess.run(check, env=env, capture_output=True, text=True, timeout=60, check=False)
        assert result.returncode == 0, result.stderr
    finally:
        worker.stop()
    quick = env | {"DSX_HEALTHCHECK_TIMEOUT": "1"}
    gone = subprocess.run(
        [*check, "worker", "action@nowhere"], env=quick, capture_output=True, timeout=60, check=False
    )
    assert gone.returncode == 1
