"""The hot path's HTTP/1.1 client against real sockets: raw asyncio servers that answer exactly as
each case needs (keep-alive, chunked, close-delimited, stale connections, stalls, floods)."""

from __future__ import annotations

import asyncio
import hashlib
import os
import socket
import ssl
import struct
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from pathlib import Path

import httptools
import pytest

from dsx_connect.workers.http1 import (
    HIGH_WATER,
    ConnectionClosed,
    HttpPool,
    ProtocolError,
    request_head,
    target,
)
from tests.dsx_connect.superlog.peers import make_certs

pytestmark = [pytest.mark.unit, pytest.mark.anyio]


@pytest.fixture(params=[pytest.param(False, id="asyncio"), pytest.param(True, id="uvloop")])
def anyio_backend(request: pytest.FixtureRequest) -> tuple[str, dict[str, bool]]:
    """Both loops: the workers run uvloop, whose transports differ from asyncio's in small ways."""
    return "asyncio", {"use_uvloop": request.param}


class Request:
    def __init__(self) -> None:
        self.method = b""
        self.url = b""
        self.headers: dict[str, str] = {}
        self.body = bytearray()


class RequestReader:
    """Parses the requests a test server receives (httptools' request parser)."""

    def __init__(self, reader: asyncio.StreamReader) -> None:
        self.reader = reader
        self.done: list[Request] = []
        self.current = Request()
        self.parser = httptools.HttpRequestParser(self)

    def on_url(self, url: bytes) -> None:
        self.current.url += url

    def on_header(self, name: bytes, value: bytes) -> None:
        self.current.headers[name.decode().lower()] = value.decode()

    def on_body(self, body: bytes) -> None:
        self.current.body += body

    def on_message_complete(self) -> None:
        self.current.method = self.parser.get_method()
        self.done.append(self.current)
        self.current = Request()

    async def next(self) -> Request | None:
        while not self.done:
            data = await self.reader.read(65536)
            if not data:
                return None
            self.parser.feed_data(data)
        return self.done.pop(0)


Handler = Callable[[RequestReader, asyncio.StreamWriter], Awaitable[None]]


@asynccontextmanager
async def serve(
    handler: Handler, ssl_ctx: ssl.SSLContext | None = None
) -> AsyncIterator[tuple[str, list[int]]]:
    """A server on a free port; yields its base URL and a list that counts accepted connections."""
    accepted: list[int] = []
    writers: list[asyncio.StreamWriter] = []

    async def on_connect(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        accepted.append(1)
        writers.append(writer)
        try:
            await handler(RequestReader(reader), writer)
        except (ConnectionError, asyncio.IncompleteReadError):
            pass
        except RuntimeError:
            # uvloop's answer to a write on a transport the client already closed
            if not writer.transport.is_closing():
                raise
        finally:
            writer.close()

    server = await asyncio.start_server(on_connect, "127.0.0.1", 0, ssl=ssl_ctx)
    port = server.sockets[0].getsockname()[1]
    try:
        yield f"{'https' if ssl_ctx else 'http'}://127.0.0.1:{port}", accepted
    finally:
        server.close()
        for writer in writers:  # since Python 3.12, wait_closed() also waits for open connections
            if not writer.transport.is_closing():
                writer.transport.abort()
        await server.wait_closed()


async def until(condition: Callable[[], bool], timeout: float = 10.0) -> None:
    """Wait for ``condition``, checking between loop iterations."""
    async with asyncio.timeout(timeout):
        while not condition():  # noqa: ASYNC110 (a connection's state: nothing to await on)
            await asyncio.sleep(0.005)


def answer(body: bytes, status: int = 200, extra: str = "") -> bytes:
    return f"HTTP/1.1 {status} X\r\nContent-Length: {len(body)}\r\n{extra}\r\n".encode() + body


async def echo_digest(requests: RequestReader, writer: asyncio.StreamWriter) -> None:
    """Answers each request with the SHA-256 of its body, keeping the connection open."""
    while (req := await requests.next()) is not None:
        writer.write(answer(hashlib.sha256(req.body).hexdigest().encode()))
        await writer.drain()


async def test_requests_reuse_one_keepalive_connection_and_bodies_arrive_whole() -> None:
    pool = HttpPool()
    async with serve(echo_digest) as (base, accepted):
        url = target(base + "/scan?x=1")
        for size in (0, 1, 70_000, 3 << 20):
            body = os.urandom(size)
            async with await pool.request("POST", url, {"X-Test": "a"}, body) as resp:
                assert resp.status == 200
                assert await resp.read() == hashlib.sha256(body).hexdigest().encode()
        assert len(accepted) == 1
    pool.close()


async def test_headers_and_request_line_are_sent_as_given() -> None:
    seen: list[Request] = []

    async def record(requests: RequestReader, writer: asyncio.StreamWriter) -> None:
        while (req := await requests.next()) is not None:
            seen.append(req)
            writer.write(answer(b"{}", extra="Content-Type: application/json; charset=utf-8\r\n"))

    pool = HttpPool()
    async with serve(record) as (base, _):
        resp = await pool.request("POST", target(base + "/a/b?q=1"), {"AUTH": "t"}, b"xyz")
        async with resp:
            assert resp.content_type == "application/json"
            assert resp.content_length == 2
            await resp.read()
    pool.close()
    (req,) = seen
    assert (req.method, req.url) == (b"POST", b"/a/b?q=1")
    assert req.headers["auth"] == "t"
    assert req.headers["host"].startswith("127.0.0.1:")
    assert req.headers["content-length"] == "3" and bytes(req.body) == b"xyz"


def test_a_header_value_with_a_line_break_is_refused() -> None:
    with pytest.raises(ValueError, match="invalid HTTP header"):
        request_head("POST", target("http://h/p"), {"X-Meta": "a\r\nInjected: 1"}, 0)


def test_host_header_omits_default_ports_and_brackets_ipv6() -> None:
    assert target("https://example.com/x").host_header == b"example.com"
    assert target("http://[::1]:8080/x").host_header == b"[::1]:8080"
    with pytest.raises(ValueError):
        target("ftp://example.com/")


async def test_chunked_and_close_delimited_answers_are_read_to_their_end() -> None:
    async def chunked(requests: RequestReader, writer: asyncio.StreamWriter) -> None:
        await requests.next()
        writer.write(b"HTTP/1.1 100 Continue\r\n\r\n")
        writer.write(
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n"
        )
        await requests.next()
        writer.write(b"HTTP/1.1 200 OK\r\nConnection: close\r\n\r\nuntil the end")
        await writer.drain()

    pool = HttpPool()
    async with serve(chunked) as (base, accepted):
        url = target(base + "/")
        async with await pool.request("POST", url, {}, b"1") as resp:
            assert (resp.status, await resp.read()) == (200, b"hello world")
        async with await pool.request("POST", url, {}, b"2") as resp:
            assert await resp.read() == b"until the end"
        assert len(accepted) == 1
    pool.close()


async def test_a_streamed_body_goes_with_its_length_or_chunked() -> None:
    async def pieces() -> AsyncIterator[bytes]:
        for i in range(50):
            yield bytes([i]) * 100_000

    expected = hashlib.sha256(b"".join(bytes([i]) * 100_000 for i in range(50))).hexdigest().encode()
    pool = HttpPool()
    async with serve(echo_digest) as (base, _):
        url = target(base + "/")
        async with await pool.request("POST", url, {}, pieces(), content_length=5_000_000) as resp:
            assert await resp.read() == expected
        async with await pool.request("POST", url, {}, pieces()) as resp:  # no length: chunked
            assert await resp.read() == expected
    pool.close()


async def test_a_large_answer_is_streamed_with_bounded_buffering() -> None:
    size = 64 << 20

    async def flood(requests: RequestReader, writer: asyncio.StreamWriter) -> None:
        await requests.next()
        writer.write(f"HTTP/1.1 200 OK\r\nContent-Length: {size}\r\n\r\n".encode())
        block = b"z" * (1 << 20)
        for _ in range(size >> 20):
            writer.write(block)
            await writer.drain()

    pool = HttpPool()
    async with serve(flood) as (base, _), await pool.request("POST", target(base + "/"), {}, b"") as resp:
        conn = resp._conn
        await asyncio.sleep(0.5)  # a consumer that does not read: the socket must be paused
        assert conn._buffered <= HIGH_WATER + (256 << 10)  # one read past the mark at most
        received = 0
        async for chunk in resp.iter_chunks():
            received += len(chunk)
        assert received == size
    pool.close()


async def test_an_idle_connection_the_server_closed_is_replaced_transparently() -> None:
    async def one_per_connection(requests: RequestReader, writer: asyncio.StreamWriter) -> None:
        await requests.next()
        writer.write(answer(b"ok"))  # keep-alive promised, then closed: like a server's idle timeout
        await writer.drain()

    pool = HttpPool()
    async with serve(one_per_connection) as (base, accepted):
        url = target(base + "/")
        for _ in range(3):
            async with await pool.request("POST", url, {}, b"x") as resp:
                assert await resp.read() == b"ok"
        assert len(accepted) == 3
    pool.close()


async def test_a_connection_closed_before_the_answer_raises_connection_closed() -> None:
    async def hang_up(requests: RequestReader, writer: asyncio.StreamWriter) -> None:
        await requests.next()

    pool = HttpPool()
    async with serve(hang_up) as (base, _):
        with pytest.raises(ConnectionClosed):
            await pool.request("POST", target(base + "/"), {}, b"x")
    pool.close()


async def test_an_answer_cut_short_fails_and_the_connection_is_not_reused() -> None:
    async def short(requests: RequestReader, writer: asyncio.StreamWriter) -> None:
        await requests.next()
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nonly this")
        await writer.drain()

    pool = HttpPool()
    async with serve(short) as (base, _):
        resp = await pool.request("POST", target(base + "/"), {}, b"x")
        with pytest.raises(ConnectionClosed):
            async with resp:
                await resp.read()
        assert not pool._idle.get(resp._key)
    pool.close()


async def _garbage(requests: RequestReader, writer: asyncio.StreamWriter) -> None:
    await requests.next()
    writer.write(b"NOT HTTP AT ALL\r\n\r\n")
    await writer.drain()
    await asyncio.sleep(5)


async def _silent(requests: RequestReader, writer: asyncio.StreamWriter) -> None:
    await requests.next()
    await asyncio.sleep(30)


@pytest.mark.parametrize(
    ("handler", "error", "read_timeout"),
    [
        pytest.param(_garbage, ProtocolError, 5, id="garbage is a protocol error"),
        pytest.param(_silent, TimeoutError, 0.2, id="a silent server times out per read"),
    ],
)
async def test_a_misbehaving_server_raises(
    handler: Handler, error: type[Exception], read_timeout: float
) -> None:
    pool = HttpPool()
    async with serve(handler) as (base, _):
        with pytest.raises(error):
            await pool.request("POST", target(base + "/"), {}, b"x", read_timeout=read_timeout)
    pool.close()


async def test_connection_refused_is_an_os_error() -> None:
    server = await asyncio.start_server(lambda r, w: None, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    server.close()
    await server.wait_closed()
    with pytest.raises(OSError):
        await HttpPool().request("POST", target(f"http://127.0.0.1:{port}/"), {}, b"x", connect_timeout=2)


async def test_tls_is_verified_against_the_given_authority(tmp_path: Path) -> None:
    certs = make_certs(tmp_path)
    server_ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server_ctx.load_cert_chain(certs.cert, certs.key)
    client_ctx = ssl.create_default_context(cafile=str(certs.ca))
    pool = HttpPool()
    async with serve(echo_digest, server_ctx) as (base, _):
        url = target(base + "/")
        async with await pool.request("POST", url, {}, b"tls", ssl_option=client_ctx) as resp:
            assert await resp.read() == hashlib.sha256(b"tls").hexdigest().encode()
        with pytest.raises(ssl.SSLError):  # the system trust store does not know this CA
            await pool.request("POST", url, {}, b"tls", ssl_option=True)
        async with await pool.request("POST", url, {}, b"lab", ssl_option=False) as resp:  # verification off
            assert resp.status == 200
            await resp.read()
    pool.close()


@pytest.mark.timeout(60)
async def test_an_extra_response_is_never_the_answer_to_another_request() -> None:
    """A buggy scanner or a proxy in front of it writes a second complete response: right behind
    the first (the same write), or onto the idle connection before the next request. Either was
    read as the next request's answer, so every later item on that connection got the previous
    item's verdict. Each request gets its own answer; the polluted connection is dropped."""
    extra = answer(b"EVIL")
    polluted = asyncio.Event()

    served = [0]  # requests answered, over every connection

    async def polluting(requests: RequestReader, writer: asyncio.StreamWriter) -> None:
        while (req := await requests.next()) is not None:
            served[0] += 1
            n = served[0]
            if n == 1:
                writer.write(answer(bytes(req.body)) + extra)  # a second answer in the same write
            elif n == 2:
                writer.write(answer(bytes(req.body)))
                await writer.drain()
                writer.write(extra)  # onto the connection the client keeps for its next request
                await writer.drain()
                polluted.set()
            else:
                writer.write(answer(bytes(req.body)))
            await writer.drain()

    pool = HttpPool()
    async with serve(polluting) as (base, accepted):
        url = target(base + "/")
        got = []
        for n in range(4):
            body = f"item-{n}".encode()
            async with await pool.request("POST", url, {}, body) as resp:
                got.append(await resp.read())
            if n == 1:  # the extra answer has reached the idle connection before the next request
                await polluted.wait()
                kept = [conn for conns in pool._idle.values() for conn in conns]
                await until(lambda kept=kept: all(conn.received_any or conn.closed for conn in kept))
        assert got == [b"item-0", b"item-1", b"item-2", b"item-3"]
        assert len(accepted) >= 2  # the polluted connections were not reused
    pool.close()


async def test_answer_headers_past_the_bound_are_refused() -> None:
    """A peer sending endless headers is cut off at ``MAX_HEAD_BYTES`` (plus one read), not held
    whole in the worker's memory."""

    async def endless_headers(requests: RequestReader, writer: asyncio.StreamWriter) -> None:
        await requests.next()
        writer.write(b"HTTP/1.1 200 OK\r\nX-Big: ")
        for _ in range(64):  # 4 MiB of one header value, unless the client hangs up first
            if writer.transport.is_closing():  # uvloop raises on a write to a closed transport
                return
            writer.write(b"a" * 65536)
            await writer.drain()

    pool = HttpPool()
    async with serve(endless_headers) as (base, _):
        with pytest.raises(ProtocolError, match="headers longer than"):
            await pool.request("POST", target(base + "/"), {}, b"x", read_timeout=10)
    pool.close()


async def test_a_close_delimited_answer_cut_by_a_reset_is_not_complete() -> None:
    async def reset_mid_body(requests: RequestReader, writer: asyncio.StreamWriter) -> None:
        await requests.next()
        writer.write(b"HTTP/1.1 200 OK\r\nConnection: close\r\n\r\npart of the")
        await writer.drain()
        sock = writer.get_extra_info("socket")
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        writer.transport.abort()  # RST: the end of a cut connection, not of the body

    pool = HttpPool()
    async with serve(reset_mid_body) as (base, _):
        resp = await pool.request("POST", target(base + "/"), {}, b"x", read_timeout=10)
        with pytest.raises(ConnectionClosed):
            async with resp:
                await resp.read()
    pool.close()


async def _refuse_after_head(requests: RequestReader, writer: asyncio.StreamWriter, close: bool) -> None:
    """Reads the request's head only, answers 413, then hangs up (as uvicorn does with a body it will
    not read) or stops reading while keeping the connection open."""
    head = await requests.reader.readuntil(b"\r\n\r\n")
    assert head.startswith(b"POST")
    writer.write(answer(b'{"reason": "file too large"}', status=413, extra="Connection: close\r\n"))
    await writer.drain()
    if close:
        sock = writer.get_extra_info("socket")
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        writer.transport.abort()
    else:
        await asyncio.Event().wait()  # until the client hangs up (the fixture aborts us)


@pytest.mark.parametrize("close", [True, False], ids=["reset", "stops-reading"])
async def test_an_early_refusal_of_a_streamed_body_is_the_answer(close: bool) -> None:
    """A scanner answering 413 before the body was all sent: the client reported a connection error,
    which the worker retries (streaming the whole file again each time) instead of a refusal."""

    async def body() -> AsyncIterator[bytes]:
        for _ in range(4096):  # 256 MiB, far past what the socket buffers hold
            yield b"x" * 65536

    pool = HttpPool()
    async with serve(lambda r, w: _refuse_after_head(r, w, close)) as (base, _):
        resp = await pool.request("POST", target(base + "/"), {}, body(), read_timeout=10)
        async with resp:
            assert resp.status == 413
            assert b"too large" in await resp.read()
        assert not pool._idle.get(resp._key)  # never reused for another request
    pool.close()


async def test_trailers_past_the_bound_are_refused_and_never_replace_a_header() -> None:
    """A chunked answer's trailers were stored without bound once the headers had ended: a peer
    sending megabytes of them grew the worker's memory until it was killed (and again on
    redelivery). They are bounded as the head is, and dropped: none may replace a header."""

    async def endless_trailers(requests: RequestReader, writer: asyncio.StreamWriter) -> None:
        await requests.next()
        writer.write(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n")
        for block in range(32):  # 2 MiB of trailer lines, unless the client hangs up first
            if writer.transport.is_closing():  # uvloop raises on a write to a closed transport
                return
            writer.write(b"".join(b"x%d:\r\n" % (block * 8192 + n) for n in range(8192)))
            await writer.drain()
        writer.write(b"\r\n")

    async def one_trailer(requests: RequestReader, writer: asyncio.StreamWriter) -> None:
        await requests.next()
        writer.write(
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nContent-Type: application/octet-stream\r\n\r\n"
            b"5\r\nhello\r\n0\r\nContent-Type: application/json\r\n\r\n"
        )
        await writer.drain()

    pool = HttpPool()
    async with serve(endless_trailers) as (base, _):
        resp = await pool.request("POST", target(base + "/"), {}, b"x", read_timeout=10)
        with pytest.raises(ProtocolError, match="trailers longer than"):
            async with resp:
                await resp.read()
    async with (
        serve(one_trailer) as (base, _),
        await pool.request("POST", target(base + "/"), {}, b"x", read_timeout=10) as resp,
    ):
        assert await resp.read() == b"hello"
        assert resp.content_type == "application/octet-stream"
    pool.close()


async def test_many_small_chunks_are_not_taken_for_trailers() -> None:
    """The trailers' bound counts only what the chunks' own framing does not need."""
    body = os.urandom(300_000)

    async def tiny_chunks(requests: RequestReader, writer: asyncio.StreamWriter) -> None:
        await requests.next()
        framed = b"".join(b"%x\r\n%s\r\n" % (3, body[i : i + 3]) for i in range(0, len(body), 3))
        writer.write(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n" + framed + b"0\r\n\r\n")
        await writer.drain()

    pool = HttpPool()
    async with (
        serve(tiny_chunks) as (base, _),
        await pool.request("POST", target(base + "/"), {}, b"x", read_timeout=10) as resp,
    ):
        assert await resp.read() == body
    pool.close()
