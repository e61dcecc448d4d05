"""The hot path's transport protocol, both implementations, against real local servers: raw asyncio
servers for exact wire cases, and the real dsxa_lite for the scan exchange itself."""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from dsx_connect.workers.hot_path import ScanConfig, scan_sample
from dsx_connect.workers.http1 import HttpPool, target
from dsx_connect.workers.transport import (
    CLIENTS,
    ClientName,
    ClosableTransport,
    Transport,
    make_transport,
)
from shared.errors import PermanentError, ScannerUnavailable
from tests.dsx_connect.workers.test_http1 import RequestReader, answer, echo_digest, serve
from tests.dsxa_lite.samples import eicar
from tests.dsxa_lite.servers import TOKEN, Scanner, running_scanner
from tests.support.procs import free_port

pytestmark = pytest.mark.anyio


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


def cfg_for(url: str, token: str | None = None, timeout_s: float = 10.0) -> ScanConfig:
    return ScanConfig(
        scan_url=url, auth_token=token, protected_entity=1, scanner_timeout_s=timeout_s,
        connector_timeout_s=timeout_s, connect_timeout_s=5.0, max_file_size_bytes=1 << 30,
    )  # fmt: skip


async def pieces(data: bytes, size: int) -> AsyncIterator[bytes]:
    for start in range(0, len(data), size):
        yield data[start : start + size]


@pytest.mark.unit
@pytest.mark.parametrize("name", CLIENTS)
def test_each_client_is_a_transport(name: ClientName) -> None:
    made = make_transport(name)
    try:
        assert isinstance(made, Transport)
        assert type(made).__name__ == {"http1": "HttpPool", "aiohttp": "AiohttpTransport"}[name]
    finally:
        made.close()
        assert made.closed


@pytest.mark.unit
async def test_bodies_arrive_whole_as_bytes_or_streams_with_and_without_a_length(
    transport: ClosableTransport,
) -> None:
    data = bytes(range(256)) * 4096  # 1 MiB
    digest = hashlib.sha256(data).hexdigest().encode()
    async with serve(echo_digest) as (url, accepted):
        t = target(url + "/scan")
        for body, length in ((data, None), (pieces(data, 65536), len(data)), (pieces(data, 65536), None)):
            async with await transport.request(
                "POST", t, {}, body, content_length=length, read_timeout=5
            ) as got:
                assert got.status == 200
                assert await got.read() == digest
    assert len(accepted) == 1  # one keep-alive connection for the three exchanges


@pytest.mark.unit
async def test_a_large_answer_streams_in_pieces_with_its_head_readable(transport: ClosableTransport) -> None:
    body = b"x" * (4 << 20)

    async def big(requests: RequestReader, writer: asyncio.StreamWriter) -> None:
        while await requests.next() is not None:
            writer.write(
                answer(body, extra="Content-Type: application/octet-stream; x=1\r\nX-Item-Version: v7\r\n")
            )
            await writer.drain()

    async with (
        serve(big) as (url, _),
        await transport.request("POST", target(url + "/read_file"), {}, b"{}") as got,
    ):
        assert (got.status, got.content_length, got.content_type) == (
            200,
            len(body),
            "application/octet-stream",
        )
        assert got.header("x-item-version") == "v7" and got.header("absent") is None
        sizes = [len(chunk) async for chunk in got.iter_chunks()]
    assert sum(sizes) == len(body) and len(sizes) > 1


@pytest.mark.unit
async def test_resolve_picks_the_address_and_the_host_header_keeps_the_name(
    transport: ClosableTransport,
) -> None:
    seen: list[tuple[str, int]] = []
    hosts: list[str] = []

    async def record(requests: RequestReader, writer: asyncio.StreamWriter) -> None:
        while (req := await requests.next()) is not None:
            hosts.append(req.headers["host"])
            writer.write(answer(b"ok"))
            await writer.drain()

    async def resolve(host: str, port: int) -> str:
        seen.append((host, port))
        return "127.0.0.1"

    async with serve(record) as (url, _):
        port = int(url.rsplit(":", 1)[1])
        t = target(f"http://connector.invalid:{port}/read_file")
        async with await transport.request("POST", t, {}, b"{}", resolve=resolve) as got:
            assert await got.read() == b"ok"
    assert seen == [("connector.invalid", port)]
    assert hosts == [f"connector.invalid:{port}"]


@pytest.mark.unit
async def test_a_stalled_answer_times_out(transport: ClosableTransport) -> None:
    async def stall(requests: RequestReader, writer: asyncio.StreamWriter) -> None:
        await requests.next()
        await asyncio.sleep(30)

    async with serve(stall) as (url, _):
        with pytest.raises(TimeoutError):
            await transport.request("POST", target(url + "/"), {}, b"x", read_timeout=0.3)


@pytest.mark.unit
async def test_transport_failures_reach_the_hot_path_as_scanner_unavailable(
    transport: ClosableTransport,
) -> None:
    async def busy_then_drop(requests: RequestReader, writer: asyncio.StreamWriter) -> None:
        req = await requests.next()
        if req is not None and req.url.endswith(b"/busy"):
            writer.write(answer(b'{"message": "busy"}', status=503))
            await writer.drain()
        # /drop: the connection goes away before any answer

    async with serve(busy_then_drop) as (url, _):
        with pytest.raises(ScannerUnavailable, match="busy"):
            await scan_sample(transport, b"x", "m", cfg_for(url + "/busy"))
        with pytest.raises(ScannerUnavailable, match="unreachable"):
            await scan_sample(transport, b"x", "m", cfg_for(url + "/drop"))


@pytest.fixture(scope="module")
def guarded_scanner(logs_dir: Path) -> Iterator[Scanner]:
    """dsxa_lite requiring a token."""
    with running_scanner("transport", {"DSXA_LITE_AUTH_TOKEN": TOKEN}, logs_dir) as scanner:
        yield scanner


@pytest.mark.integration
async def test_the_real_scanner_through_each_transport(
    transport: ClosableTransport, guarded_scanner: Scanner
) -> None:
    cfg = cfg_for(f"{guarded_scanner.url}/scan/binary/v2", TOKEN)
    body = b"quarterly report\n" * 100
    verdict = await scan_sample(transport, body, "file-loc:report.txt", cfg)
    assert verdict.verdict == "Benign" and verdict.x_custom_metadata == "file-loc:report.txt"
    assert verdict.file_info.file_hash == hashlib.sha256(body).hexdigest()
    assert (await scan_sample(transport, eicar(), "m", cfg)).verdict == "Malicious"
    with pytest.raises(PermanentError) as info:
        await scan_sample(transport, b"x", "m", cfg_for(cfg.scan_url, "wrong-token"))
    assert info.value.status_code == 401


@pytest.mark.integration
async def test_a_stream_without_length_reaches_the_real_scanner_whole(
    transport: ClosableTransport, guarded_scanner: Scanner
) -> None:
    from dsx_connect.workers.hot_path import _scan
    from shared.dsxa.protocol import scan_headers

    data = b"a" * (40 * 65536)
    cfg = cfg_for(f"{guarded_scanner.url}/scan/binary/v2", TOKEN)
    verdict = await _scan(transport, pieces(data, 65536), None, scan_headers(TOKEN, 1, None), cfg)
    assert verdict.file_info.file_size_in_bytes == len(data)
    assert verdict.file_info.file_hash == hashlib.sha256(data).hexdigest()


@pytest.mark.unit
def test_the_lean_client_stays_the_default() -> None:
    assert isinstance(make_transport("http1"), HttpPool)
    with pytest.raises(ValueError, match="DSXCONNECT_SCANNER__CLIENT"):
        make_transport("curl")  # type: ignore[arg-type]


@pytest.mark.unit
async def test_no_transport_goes_through_a_proxy_variable(
    transport: ClosableTransport, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Proxies are not used by the hot path (docs/deployment.md#proxies): a dead one changes nothing."""
    dead = f"http://127.0.0.1:{free_port()}"
    for name in ("HTTP_PROXY", "http_proxy", "ALL_PROXY", "all_proxy"):
        monkeypatch.setenv(name, dead)
    monkeypatch.delenv("NO_PROXY", raising=False)
    monkeypatch.delenv("no_proxy", raising=False)
    async with (
        serve(echo_digest) as (url, accepted),
        await transport.request("POST", target(url + "/"), {}, b"direct") as got,
    ):
        assert await got.read() == hashlib.sha256(b"direct").hexdigest().encode()
    assert len(accepted) == 1
