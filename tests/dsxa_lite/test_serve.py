"""``python -m dsxa_lite``: binds loopback by default, takes --host/--port, warns when exposed."""

from __future__ import annotations

import json
import socket
from contextlib import suppress
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


def _send_headers(port: int, header_bytes: int) -> bytes:
    """A request whose headers go on for ``header_bytes`` (and never end past the bound): what
    the server answers before it closes the connection (b"" if it never does within 10 s)."""
    line = b"X-Junk: " + b"a" * 8000 + b"\r\n"
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(b"POST /scan/binary/v2 HTTP/1.1\r\nHost: x\r\n")
        sent = 0
        try:
            while sent < header_bytes:
                sock.sendall(line * 16)
                sent += len(line) * 16
            if header_bytes < 32 * 1024:
                sock.sendall(b"Content-Length: 4\r\n\r\ntext")
        except OSError:  # the server closed the connection: its answer is waiting
            pass
        answer = b""
        with suppress(OSError):
            while chunk := sock.recv(65536):
                answer += chunk
                if header_bytes < 32 * 1024 and b"}" in answer:
                    break
        return answer


def test_launcher_bounds_the_request_headers(logs_dir: Path) -> None:
    # httptools alone keeps whatever headers come (400 MB on one connection was accepted)
    port = free_port()
    process = serve(logs_dir, f"dsxa-lite-serve-headers-{port}", ["--port", str(port)])
    process.start()
    try:
        process.wait_healthy(f"http://127.0.0.1:{port}/healthz")
        assert _send_headers(port, 8 * 1024 * 1024).startswith(b"HTTP/1.1 431 ")
        ok = _send_headers(port, 16 * 1024)  # ordinary headers still pass
        assert ok.startswith(b"HTTP/1.1 200 ") and b'"verdict": "Benign"' in ok, ok[:300]
        assert httpx.get(f"http://127.0.0.1:{port}/healthz").status_code == 200
    finally:
        process.stop()
