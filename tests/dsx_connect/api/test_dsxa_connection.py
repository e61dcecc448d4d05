"""``/test/dsxa-connection`` goes through the workers' transport: real core processes, the real
dsxa_lite, and a real local server for a scanner the workers cannot use."""

from __future__ import annotations

import gzip
import json
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import httpx
import pytest

from dsx_connect.workers.transport import CLIENTS
from tests.dsx_connect.conftest import API
from tests.dsxa_lite.servers import TOKEN, Scanner, running_scanner
from tests.support.auth import OPERATOR_HEADERS
from tests.support.procs import ServiceProcess, base_env, free_port, uvicorn_argv

pytestmark = pytest.mark.integration


@contextmanager
def running_core(logs_dir: Path, redis_url: str, **env: str) -> Iterator[str]:
    """A core API process with ``env``; yields its API base URL."""
    port = free_port()
    proc = ServiceProcess(
        f"core-dsxa-test-{port}",
        uvicorn_argv("dsx_connect.app:app", port),
        base_env(DSXCONNECT_REDIS_URL=redis_url.rsplit("/", 1)[0] + "/7", **env),
        logs_dir,
    ).start()
    try:
        proc.wait_healthy(f"http://127.0.0.1:{port}/healthz")
        yield f"http://127.0.0.1:{port}{API}"
    finally:
        proc.stop()


def call_route(api: str) -> httpx.Response:
    return httpx.get(f"{api}/test/dsxa-connection", headers=OPERATOR_HEADERS, timeout=30)


@pytest.fixture(scope="module")
def scanner(logs_dir: Path) -> Iterator[Scanner]:
    with running_scanner("dsxa-conn", {"DSXA_LITE_AUTH_TOKEN": TOKEN}, logs_dir) as running:
        yield running


class _GzipScanner(BaseHTTPRequestHandler):
    """Answers every scan with a valid verdict, but gzip-compressed whatever the request asked:
    a client that decompresses (httpx, which the route used before) reads it; the workers'
    transports, which never ask for or undo compression, cannot."""

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("Content-Length") or 0))
        body = gzip.compress(json.dumps({"verdict": "Benign", "file_info": {}}).encode())
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Encoding", "gzip")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture(scope="module")
def gzip_scanner() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _GzipScanner)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/scan/binary/v2"
    finally:
        server.shutdown()
        server.server_close()


@pytest.mark.parametrize("client", CLIENTS)
def test_the_route_scans_through_the_configured_transport(
    client: str, scanner: Scanner, gzip_scanner: str, logs_dir: Path, redis_url: str
) -> None:
    with running_core(
        logs_dir,
        redis_url,
        DSXCONNECT_SCANNER__SCAN_BINARY_URL=f"{scanner.url}/scan/binary/v2",
        DSXCONNECT_SCANNER__AUTH_TOKEN=TOKEN,
        DSXCONNECT_SCANNER__CLIENT=client,
    ) as api:
        ok = call_route(api)
    assert ok.status_code == 200, ok.text
    assert ok.json()["verdict"]["verdict"] == "Benign"
    # the scanner the workers cannot use (httpx would have decompressed its answer and passed)
    assert httpx.post(gzip_scanner, content=b"x").json()["verdict"] == "Benign"
    with running_core(
        logs_dir,
        redis_url,
        DSXCONNECT_SCANNER__SCAN_BINARY_URL=gzip_scanner,
        DSXCONNECT_SCANNER__CLIENT=client,
    ) as api:
        refused = call_route(api)
    assert refused.status_code == 502, refused.text
    assert refused.json()["scanner_url"] == gzip_scanner


def test_a_proxy_variable_is_not_used_when_no_proxy_lists_the_scanner(
    scanner: Scanner, logs_dir: Path, redis_url: str
) -> None:
    """The scanner is reached directly: a proxy on a dead port changes nothing."""
    with running_core(
        logs_dir,
        redis_url,
        DSXCONNECT_SCANNER__SCAN_BINARY_URL=f"{scanner.url}/scan/binary/v2",
        DSXCONNECT_SCANNER__AUTH_TOKEN=TOKEN,
        HTTP_PROXY=f"http://127.0.0.1:{free_port()}",
        NO_PROXY="127.0.0.1,localhost",
    ) as api:
        response = call_route(api)
    assert response.status_code == 200, response.text
