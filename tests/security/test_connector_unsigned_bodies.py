"""An unsigned caller costs a connector no memory: the DSX-HMAC header checks that need no body
(a DSX-HMAC ``Authorization``, the 60 s skew, a key id the connector holds) answer 401 before a
byte of the body is read, on the read hot path and on the FastAPI-routed core calls alike; and the
core's calls, small JSON bodies, are capped far below ``MAX_REQUEST_BYTES``."""

from __future__ import annotations

import json
import socket
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from starlette.types import Message

from connectors.filesystem.connector import FilesystemConnector
from connectors.filesystem.settings import FilesystemSettings
from shared.batch_read import MAX_ITEMS
from shared.connector import create_connector_app
from shared.connector.app import CORE_CALL_MAX_BYTES
from shared.hmac_auth import Signer
from tests.support.auth import CONNECTOR_AUTH, CONNECTOR_KEY_ID, CONNECTOR_SECRET
from tests.support.threaded_server import serving

pytestmark = [pytest.mark.unit, pytest.mark.anyio]

PREFIX = "/filesystem-connector"
SIGNER = Signer(CONNECTOR_KEY_ID, CONNECTOR_SECRET)

#: the core's calls that carry a body, and the ones that do not (a body is refused all the same)
SIGNED_CALLS = [
    ("POST", f"{PREFIX}/read_file"),
    ("POST", f"{PREFIX}/read_files"),
    ("PUT", f"{PREFIX}/item_action"),
    ("PUT", f"{PREFIX}/config"),
    ("POST", f"{PREFIX}/full_scan"),
    ("GET", f"{PREFIX}/estimate"),
]


def _authorization(kind: str, method: str, path: str) -> str | None:
    if kind == "missing":
        return None
    if kind == "malformed":
        return "DSX-HMAC key_id=x, ts=1"
    if kind == "bearer":
        return "Bearer something"
    if kind == "stale":
        return SIGNER.authorization(method, path, b"", ts=int(time.time()) - 600)
    if kind == "unknown_key":
        return Signer("dsxk-nobody", "not-our-secret-0123456789").authorization(method, path, b"")
    raise AssertionError(kind)


HEADER_FORGERIES = ["missing", "malformed", "bearer", "stale", "unknown_key"]


@pytest.fixture
def asset(tmp_path: Path) -> Path:
    root = tmp_path / "asset"
    root.mkdir()
    (root / "a.txt").write_bytes(b"alpha")
    return root


@pytest.fixture
def connector(asset: Path) -> FilesystemConnector:
    return FilesystemConnector(FilesystemSettings(asset=str(asset), auth=CONNECTOR_AUTH))  # type: ignore[arg-type]


def http_scope(method: str, path: str, headers: list[tuple[bytes, bytes]]) -> dict[str, Any]:
    return {
        "type": "http",
        "asgi": {"version": "3.0", "spec_version": "2.4"},
        "http_version": "1.1",
        "method": method,
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "query_string": b"",
        "root_path": "",
        "headers": headers,
        "client": ("127.0.0.1", 1234),
        "server": ("127.0.0.1", 80),
    }


@pytest.mark.parametrize("forgery", HEADER_FORGERIES)
@pytest.mark.parametrize(("method", "path"), SIGNED_CALLS, ids=[f"{m} {p}" for m, p in SIGNED_CALLS])
async def test_a_request_failing_the_header_checks_is_401_before_its_body_is_read(
    connector: FilesystemConnector, forgery: str, method: str, path: str
) -> None:
    """The app is driven at the ASGI level: ``receive`` counts what the server pulled of the body."""
    app = create_connector_app(connector)
    size = 8 << 20  # under MAX_REQUEST_BYTES (16 MiB): the old code read all of it first
    headers = [(b"content-type", b"application/json"), (b"content-length", str(size).encode())]
    authorization = _authorization(forgery, method, path)
    if authorization is not None:
        headers.append((b"authorization", authorization.encode()))
    pulled = 0

    async def receive() -> Message:
        nonlocal pulled
        pulled += 1
        return {"type": "http.request", "body": b" " * 65536, "more_body": pulled < size // 65536}

    sent: list[Message] = []

    async def send(message: Message) -> None:
        sent.append(message)

    await app(http_scope(method, path, headers), receive, send)
    assert sent[0]["type"] == "http.response.start" and sent[0]["status"] == 401
    assert (b"www-authenticate", b"DSX-HMAC") in sent[0]["headers"]
    assert "detail" in json.loads(b"".join(m.get("body", b"") for m in sent[1:]))
    assert pulled == 0, f"the server read {pulled} chunks of an unsigned body before refusing it"


async def test_unsigned_callers_get_401_while_still_sending_their_body(
    connector: FilesystemConnector,
) -> None:
    """Over real HTTP: the answer arrives while the client still holds most of its body."""
    app = create_connector_app(connector)
    with serving(app) as url:
        port = int(url.rsplit(":", 1)[1])
        for method, path in [("POST", f"{PREFIX}/read_file"), ("PUT", f"{PREFIX}/item_action")]:
            with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
                head = f"{method} {path} HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                sock.sendall(f"{head}Content-Length: {2 << 20}\r\n\r\n".encode() + b'{"location": "')
                sock.settimeout(5)
                try:
                    answer = sock.recv(4096)
                except TimeoutError:
                    pytest.fail(f"{method} {path}: no answer before the body was complete")
                assert answer.startswith(b"HTTP/1.1 401"), answer[:200]


def _signed(method: str, path: str, content: bytes) -> dict[str, str]:
    return {"content-type": "application/json", "authorization": SIGNER.authorization(method, path, content)}


@pytest.fixture
async def signed_client(connector: FilesystemConnector) -> AsyncIterator[httpx.AsyncClient]:
    app = create_connector_app(connector)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as http:
        yield http


@pytest.mark.parametrize(("method", "path"), SIGNED_CALLS[:4], ids=[f"{m} {p}" for m, p in SIGNED_CALLS[:4]])
async def test_a_core_call_body_over_the_json_limit_is_413_naming_it(
    signed_client: httpx.AsyncClient, method: str, path: str
) -> None:
    assert CORE_CALL_MAX_BYTES <= 4 << 20  # the connector's MAX_REQUEST_BYTES is 16 MiB
    content = json.dumps({"location": "a.txt", "metainfo": "a", "pad": "x" * CORE_CALL_MAX_BYTES}).encode()
    answer = await signed_client.request(
        method, path, content=content, headers=_signed(method, path, content)
    )
    assert answer.status_code == 413, answer.text
    assert f"limit of {CORE_CALL_MAX_BYTES} bytes" in answer.json()["message"]

    async def chunked() -> AsyncIterator[bytes]:  # no Content-Length: refused as it arrives
        for start in range(0, len(content), 65536):
            yield content[start : start + 65536]

    streamed = await signed_client.request(
        method, path, content=chunked(), headers=_signed(method, path, content)
    )
    assert streamed.status_code == 413, streamed.text
    assert f"limit of {CORE_CALL_MAX_BYTES} bytes" in streamed.text


async def test_the_largest_legitimate_read_files_body_fits_the_limit(
    signed_client: httpx.AsyncClient, asset: Path
) -> None:
    """32 items whose location and metainfo are 4096 characters each, JSON-escaped as the core
    sends them (``\\ud83d\\ude00``: 12 bytes a character outside the BMP)."""
    name = "\U0001f600" * 4096
    content = json.dumps({"items": [{"location": name, "metainfo": name}] * MAX_ITEMS}).encode()
    assert len(content) > 3_000_000
    answer = await signed_client.post(
        f"{PREFIX}/read_files", content=content, headers=_signed("POST", f"{PREFIX}/read_files", content)
    )
    assert answer.status_code == 200, answer.text[:300]


async def test_webhooks_keep_max_request_bytes(signed_client: httpx.AsyncClient) -> None:
    content = json.dumps({"pad": "x" * CORE_CALL_MAX_BYTES}).encode()
    answer = await signed_client.post(f"{PREFIX}/webhook/event", content=content)
    assert answer.status_code == 404  # the filesystem connector has none; not 413
