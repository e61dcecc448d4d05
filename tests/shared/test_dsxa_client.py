"""The DSXA clients against the real dsxa_lite, and against transports that fail in ways a real
server cannot be made to on demand (a 503, a connection dropped halfway through a body)."""

from __future__ import annotations

import hashlib
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import httpx
import pytest

from shared.dsxa.client import AsyncDsxaClient, DsxaClient
from shared.errors import PermanentError, RetryableError
from tests.dsxa_lite.samples import eicar
from tests.dsxa_lite.servers import TOKEN, Scanner, running_scanner


@pytest.fixture(scope="module")
def guarded_scanner(logs_dir: Path) -> Iterator[Scanner]:
    """dsxa_lite requiring a token."""
    with running_scanner("dsxa-client", {"DSXA_LITE_AUTH_TOKEN": TOKEN}, logs_dir) as scanner:
        yield scanner


def client_for(scanner: Scanner, token: str | None = TOKEN) -> DsxaClient:
    return DsxaClient(f"{scanner.url}/scan/binary/v2", auth_token=token, timeout_s=10)


@pytest.mark.integration
def test_scans_bytes_and_reads_the_verdict(guarded_scanner: Scanner) -> None:
    body = b"quarterly report\n" * 100
    with client_for(guarded_scanner) as dsxa:
        verdict = dsxa.scan_binary(body, metadata="file-loc:report.txt")
    assert verdict.verdict == "Benign"
    assert verdict.file_info.file_size_in_bytes == len(body)
    assert verdict.file_info.file_hash == hashlib.sha256(body).hexdigest()
    assert verdict.x_custom_metadata == "file-loc:report.txt"


@pytest.mark.integration
def test_streams_chunks_without_knowing_the_length(guarded_scanner: Scanner) -> None:
    chunks = [b"a" * 65536 for _ in range(40)]

    def body() -> Iterator[bytes]:
        yield from chunks

    with client_for(guarded_scanner) as dsxa:
        verdict = dsxa.scan_binary(body())
    assert verdict.file_info.file_size_in_bytes == 40 * 65536
    assert verdict.file_info.file_hash == hashlib.sha256(b"".join(chunks)).hexdigest()


@pytest.mark.integration
def test_detects_eicar(guarded_scanner: Scanner) -> None:
    with client_for(guarded_scanner) as dsxa:
        assert dsxa.scan_binary(eicar()).verdict == "Malicious"


@pytest.mark.integration
@pytest.mark.parametrize("token", [None, "wrong-token"])
def test_missing_or_wrong_token_is_permanent(guarded_scanner: Scanner, token: str | None) -> None:
    with client_for(guarded_scanner, token) as dsxa, pytest.raises(PermanentError) as info:
        dsxa.scan_binary(b"x")
    assert info.value.status_code == 401


@pytest.mark.integration
@pytest.mark.anyio
async def test_async_client_scans_a_stream(guarded_scanner: Scanner) -> None:
    async def body() -> AsyncIterator[bytes]:
        yield b"part one, "
        yield b"part two"

    dsxa = AsyncDsxaClient(f"{guarded_scanner.url}/scan/binary/v2", auth_token=TOKEN)
    try:
        verdict = await dsxa.ascan_binary(body())
    finally:
        await dsxa.aclose()
    assert verdict.verdict == "Benign"
    assert verdict.file_info.file_size_in_bytes == len(b"part one, part two")


def answering(status: int, body: bytes = b"") -> httpx.MockTransport:
    return httpx.MockTransport(lambda request: httpx.Response(status, content=body))


@pytest.mark.unit
@pytest.mark.parametrize(
    ("status", "error"),
    [(503, RetryableError), (500, RetryableError), (400, PermanentError), (403, PermanentError)],
)
def test_error_answers_map_to_the_error_family(status: int, error: type) -> None:
    client = DsxaClient("http://scanner/scan/binary/v2", transport=answering(status, b"nope"))
    with client as dsxa, pytest.raises(error):
        dsxa.scan_binary(b"x")


@pytest.mark.unit
def test_connection_dropped_halfway_through_is_retryable() -> None:
    def drop(request: httpx.Request) -> httpx.Response:
        stream = request.stream
        assert isinstance(stream, httpx.SyncByteStream)
        next(iter(stream))  # the first chunk went out, then the peer vanished
        raise httpx.ReadError("connection reset by peer")

    def body() -> Iterator[bytes]:
        yield b"first chunk"
        yield b"second chunk"

    client = DsxaClient("http://scanner/scan/binary/v2", transport=httpx.MockTransport(drop))
    with client as dsxa, pytest.raises(RetryableError, match="unreachable"):
        dsxa.scan_binary(body())


@pytest.mark.unit
def test_headers_carry_token_entity_and_metadata() -> None:
    seen: dict[str, str] = {}

    def record(request: httpx.Request) -> httpx.Response:
        seen.update(request.headers)
        return httpx.Response(200, json={"verdict": "Benign"})

    with DsxaClient(
        "http://scanner/scan/binary/v2",
        auth_token="t",
        protected_entity=7,
        transport=httpx.MockTransport(record),
    ) as dsxa:
        dsxa.scan_binary(b"x", metadata="file-loc:a")
    assert seen["auth_token"] == "t" and seen["auth"] == "t"
    assert seen["protected_entity"] == "7" and seen["x-custom-metadata"] == "file-loc:a"


@pytest.mark.unit
@pytest.mark.anyio
async def test_async_client_maps_503() -> None:
    transport = httpx.MockTransport(lambda request: httpx.Response(503, text="busy"))
    dsxa = AsyncDsxaClient("http://scanner/scan/binary/v2", transport=transport)
    try:
        with pytest.raises(RetryableError, match="busy"):
            await dsxa.ascan_binary(b"x")
    finally:
        await dsxa.aclose()
