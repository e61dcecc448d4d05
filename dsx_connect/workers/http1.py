"""A lean pooled HTTP/1.1 client for the scan workers' hot path (connector read + scanner post).

Chosen by measurement (docs/performance.md): for a 32 KiB POST to dsxa_lite on this machine,
aiohttp spends ~0.3 ms of client CPU per request and this client ~0.06 ms, which is most of what
separated the pipeline from its throughput goal. The hard parts come from well-kept code:
responses are parsed by httptools (llhttp, the parser uvicorn uses), and transport, TLS and flow
control are asyncio's (uvloop in the workers).

Its scope is deliberately small: HTTP/1.1 with keep-alive, request bodies as bytes or an async
stream (Content-Length when known, else chunked), responses with Content-Length, chunked or
close-delimited bodies, read whole or streamed with back-pressure, and a per-read timeout. A
hostile peer's head, trailers and chunk extensions are bounded (trailers are dropped unread). No
redirects, cookies, proxies or compression: the hot path needs none. Control-plane calls use httpx.

Callers bound their own concurrency (the scan step's semaphore), so the pool needs no limit: it
holds at most that many connections per host.
"""

from __future__ import annotations

import asyncio
import ssl
from collections import deque
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from dataclasses import dataclass
from functools import lru_cache
from types import TracebackType
from typing import cast
from urllib.parse import urlsplit

import httptools

HIGH_WATER = 1 << 20  # stop reading from the socket once this much response body waits unread
LOW_WATER = HIGH_WATER // 4
KEEPALIVE_S = 30.0  # an idle connection older than this is closed instead of reused
MAX_HEAD_BYTES = 64 * 1024  # an answer's status line and headers: more is refused (a hostile peer)
# and what a chunked body carries besides its bytes and their framing (trailers, chunk extensions)
MAX_TAIL_BYTES = MAX_HEAD_BYTES


class HttpClientError(OSError):
    """The exchange failed at the HTTP or connection level (no usable answer)."""


class ConnectionClosed(HttpClientError):
    pass


class ProtocolError(HttpClientError):
    pass


@dataclass(frozen=True, slots=True)
class Target:
    """A parsed URL: where to connect, what to put in the request line and the Host header."""

    https: bool
    host: str
    port: int
    path: bytes  # path and query, as sent on the request line
    host_header: bytes

    @property
    def url(self) -> str:
        return f"{'https' if self.https else 'http'}://{self.host_header.decode()}{self.path.decode()}"


@lru_cache(maxsize=1024)
def target(url: str) -> Target:
    """Parse ``url`` once (workers call the same few connector and scanner URLs all day)."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError(f"not an http(s) URL: {url!r}")
    https = parts.scheme == "https"
    port = parts.port or (443 if https else 80)
    host = parts.hostname
    shown = f"[{host}]" if ":" in host else host
    if port != (443 if https else 80):
        shown = f"{shown}:{port}"
    path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    return Target(https, host, port, path.encode("ascii"), shown.encode("idna"))


@lru_cache(maxsize=8)
def _unverified_context() -> ssl.SSLContext:
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    return ctx


@lru_cache(maxsize=8)
def _default_context() -> ssl.SSLContext:
    return ssl.create_default_context()


def _ssl_for(ssl_option: ssl.SSLContext | bool) -> ssl.SSLContext:
    """``True``: the system trust store; ``False``: no verification (a lab only); or a given context."""
    if isinstance(ssl_option, ssl.SSLContext):
        return ssl_option
    return _default_context() if ssl_option else _unverified_context()


def request_head(method: str, t: Target, headers: Mapping[str, str], content_length: int | None) -> bytes:
    """The request line and headers; refuses a header that would split the request (CR/LF)."""
    lines = [f"{method} ".encode("ascii"), t.path, b" HTTP/1.1\r\nHost: ", t.host_header, b"\r\n"]
    for name, value in headers.items():
        if "\r" in value or "\n" in value or "\r" in name or "\n" in name or ":" in name:
            raise ValueError(f"invalid HTTP header {name!r}")
        lines.append(f"{name}: {value}\r\n".encode("latin-1"))
    if content_length is None:
        lines.append(b"Transfer-Encoding: chunked\r\n\r\n")
    else:
        lines.append(b"Content-Length: %d\r\n\r\n" % content_length)
    return b"".join(lines)


def _expire(waiter: asyncio.Future[None]) -> None:
    if not waiter.done():
        waiter.set_exception(TimeoutError("no answer within the read timeout"))


class _Connection(asyncio.Protocol):
    """One keep-alive connection: parses responses as they arrive and wakes the one waiting reader."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop
        self.transport: asyncio.Transport | None = None
        self._parser = httptools.HttpResponseParser(self)
        self.closed = False
        self.reused = False
        self.idle_since = 0.0
        # a request was sent and its answer is not complete: an answer at any other time (a peer's
        # extra response, sent early or while the connection was idle) is an error, never the
        # answer to the next request (which would give an item another item's verdict)
        self.expecting = False
        self._waiter: asyncio.Future[None] | None = None
        self._drain: asyncio.Future[None] | None = None
        self._write_paused = False
        self._reading_paused = False
        self._reset()

    def _reset(self) -> None:
        self.status = 0
        self.headers: dict[bytes, bytes] = {}  # lower-cased names, raw values
        self.headers_done = False
        self.complete = False
        self.keep_alive = False
        self.received_any = False
        self.body_cut = False
        self.error: BaseException | None = None
        self._until_eof = False
        self._chunks: deque[bytes] = deque()
        self._buffered = 0
        self._head_bytes = 0
        # Bytes after the feed that ended the head, less the body's: a chunked body's framing and
        # trailers. ``_framing`` is what its chunks' size lines and CRLFs need; the rest is bounded.
        self._after_head = False
        self._body_bytes = 0
        self._tail_bytes = 0
        self._framing = 0
        self._chunk_bytes = 0

    # ---- asyncio.Protocol

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # uvloop's is not a subclass, but quacks

    def data_received(self, data: bytes) -> None:
        self.received_any = True
        self._after_head = self.headers_done
        body_before = self._body_bytes
        try:
            self._parser.feed_data(data)
        except httptools.HttpParserError as exc:
            cause = exc.__context__ if isinstance(exc.__context__, ProtocolError) else None
            self._fail(cause or ProtocolError(f"malformed HTTP response: {exc}"))
            self.close()
        if not self.closed:
            self._bound_non_body(len(data) - (self._body_bytes - body_before))
        if self._buffered >= HIGH_WATER and not self._reading_paused and self.transport is not None:
            self._reading_paused = True
            self.transport.pause_reading()
        if self._drain is not None and self.answered_early and not self._drain.done():
            self._drain.set_result(None)  # stop sending: the refusal is the answer
        self._wake()

    def _bound_non_body(self, non_body: int) -> None:
        """Refuse an answer whose head, or whose chunked body's trailers and chunk extensions, grow
        past their bound (each counted to the end of the read that crossed it)."""
        if not self.headers_done:
            self._head_bytes += non_body
            if self._head_bytes > MAX_HEAD_BYTES:
                self._fail(ProtocolError(f"answer headers longer than {MAX_HEAD_BYTES} bytes"))
                self.close()
        elif self._after_head:
            self._tail_bytes += non_body
            if self._tail_bytes - self._framing > MAX_TAIL_BYTES:
                self._fail(ProtocolError(f"answer trailers longer than {MAX_TAIL_BYTES} bytes"))
                self.close()

    def eof_received(self) -> bool:
        return False  # close our side too

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        if self.headers_done and self._until_eof and not self.complete and exc is None:
            self.complete = True  # a body delimited by the end of the connection (not by a reset)
        elif not self.complete:
            why = f": {exc}" if exc else ""
            self._fail(ConnectionClosed(f"connection closed before the answer was complete{why}"))
        if self._drain is not None and not self._drain.done():
            self._drain.set_exception(self.error or ConnectionClosed("connection closed while sending"))
        self._wake()

    def pause_writing(self) -> None:
        self._write_paused = True

    def resume_writing(self) -> None:
        self._write_paused = False
        if self._drain is not None and not self._drain.done():
            self._drain.set_result(None)

    # ---- httptools callbacks

    def on_message_begin(self) -> None:
        if not self.expecting or self.complete:
            raise ProtocolError(
                "an answer the connection was not waiting for (a second or unrequested response)"
            )

    def on_header(self, name: bytes, value: bytes) -> None:
        if self.headers_done:
            return  # a chunked body's trailer: nothing reads them, and none may replace a header
        self.headers[name.lower()] = value

    def on_headers_complete(self) -> None:
        self.status = self._parser.get_status_code()
        if 100 <= self.status < 200:  # an interim answer (100 Continue): the real one follows
            self.headers = {}
            return
        self.headers_done = True
        self._until_eof = (
            b"content-length" not in self.headers
            and b"chunked" not in self.headers.get(b"transfer-encoding", b"").lower()
            and self.status >= 200
            and self.status not in (204, 304)
        )

    def on_body(self, body: bytes) -> None:
        self._chunks.append(body)
        self._buffered += len(body)
        self._body_bytes += len(body)
        self._chunk_bytes += len(body)

    def on_chunk_header(self) -> None:
        self._chunk_bytes = 0

    def on_chunk_complete(self) -> None:
        if self._after_head:  # its size line and the CRLF after its data (the last: the final CRLF)
            self._framing += len(b"%x" % self._chunk_bytes) + 4

    def on_message_complete(self) -> None:
        if not self.headers_done:  # the end of an interim answer
            return
        self.complete = True
        self.expecting = False
        self.keep_alive = self._parser.should_keep_alive()

    @property
    def answered_early(self) -> bool:
        """An error answer in before the request's body was all sent (a scanner's 413): the answer
        to this request, and the rest of the body is not sent (the connection is not reused)."""
        return self.headers_done and self.status >= 400

    # ---- used by the pool and the response

    def _fail(self, exc: BaseException) -> None:
        if self.error is None:
            self.error = exc

    def _wake(self) -> None:
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    async def _until(self, future: asyncio.Future[None], timeout: float | None) -> None:
        # A timer handle, not asyncio.timeout(): that costs ~25 µs per wait, a tenth of a request.
        timer = self._loop.call_later(timeout, _expire, future) if timeout is not None else None
        try:
            await future
        finally:
            if timer is not None:
                timer.cancel()

    async def _wait(self, timeout: float | None) -> None:
        self._waiter = self._loop.create_future()
        try:
            await self._until(self._waiter, timeout)
        finally:
            self._waiter = None

    def write(self, *data: bytes) -> None:
        if self.closed or self.transport is None or self.transport.is_closing():
            raise self.error or ConnectionClosed("connection closed while sending")
        if len(data) == 1:
            self.transport.write(data[0])
        else:
            self.transport.writelines(data)  # one writev, no copy

    async def drain(self, timeout: float | None) -> None:
        if not self._write_paused:
            return
        if self.closed:
            raise self.error or ConnectionClosed("connection closed while sending")
        self._drain = self._loop.create_future()
        try:
            await self._until(self._drain, timeout)
        finally:
            self._drain = None

    async def wait_headers(self, timeout: float | None) -> None:
        while not self.headers_done:
            if self.error is not None:
                raise self.error
            if self.closed:
                raise ConnectionClosed("connection closed before the answer")
            await self._wait(timeout)

    async def next_chunk(self, timeout: float | None) -> bytes:
        """The next piece of the body, ``b""`` at its end."""
        while not self._chunks:
            if self.complete:
                return b""
            if self.error is not None:
                raise self.error
            if self.closed:
                raise ConnectionClosed("connection closed in the middle of the answer")
            await self._wait(timeout)
        chunk = self._chunks.popleft()
        self._buffered -= len(chunk)
        if self._reading_paused and self._buffered <= LOW_WATER and self.transport is not None:
            self._reading_paused = False
            self.transport.resume_reading()
        return chunk

    def reusable(self) -> bool:
        return (
            self.complete and self.keep_alive and not self.body_cut and self.error is None and not self.closed
        )

    def recycle(self) -> None:
        self._reset()
        self.reused = True
        self.idle_since = self._loop.time()

    def close(self) -> None:
        self.closed = True
        if self.transport is not None:
            self.transport.close()


class Response:
    """An answer whose body is still on the connection; use as ``async with`` so it is released."""

    def __init__(
        self, pool: HttpPool, key: tuple[object, ...], conn: _Connection, read_timeout: float | None
    ):
        self._pool = pool
        self._key = key
        self._conn = conn
        self._timeout = read_timeout
        self.status = conn.status
        self._headers = conn.headers
        self._released = False

    def header(self, name: str) -> str | None:
        value = self._headers.get(name.lower().encode("latin-1"))
        return value.decode("latin-1") if value is not None else None

    @property
    def content_length(self) -> int | None:
        value = self._headers.get(b"content-length")
        return int(value) if value is not None and value.isdigit() else None

    @property
    def content_type(self) -> str:
        return self._headers.get(b"content-type", b"").split(b";", 1)[0].strip().lower().decode("latin-1")

    async def read(self, limit: int | None = None) -> bytes:
        """The body (or its first ``limit`` bytes, for error messages)."""
        parts: list[bytes] = []
        size = 0
        while limit is None or size < limit:
            chunk = await self._conn.next_chunk(self._timeout)
            if not chunk:
                break
            parts.append(chunk)
            size += len(chunk)
        body = b"".join(parts)
        return body if limit is None else body[:limit]

    async def iter_chunks(self) -> AsyncIterator[bytes]:
        """The body piece by piece; at most ``HIGH_WATER`` bytes are held unread."""
        while chunk := await self._conn.next_chunk(self._timeout):
            yield chunk

    def release(self) -> None:
        """Back to the pool when the answer was read to its end on a keep-alive connection, else closed."""
        if self._released:
            return
        self._released = True
        if self._conn.reusable():
            self._pool._put(self._key, self._conn)
        else:
            self._conn.close()

    async def __aenter__(self) -> Response:
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if exc_type is not None:
            self._conn.close()  # an unread body would corrupt the next exchange
        self.release()


class HttpPool:
    """Keep-alive connections per (scheme, host, port, TLS settings), reused most-recent first."""

    def __init__(self, keepalive_s: float = KEEPALIVE_S) -> None:
        self._idle: dict[tuple[object, ...], deque[_Connection]] = {}
        self._keepalive_s = keepalive_s
        self._closed = False

    async def request(
        self,
        method: str,
        url: Target,
        headers: Mapping[str, str],
        body: bytes | AsyncIterator[bytes] = b"",
        *,
        content_length: int | None = None,
        ssl_option: ssl.SSLContext | bool = True,
        connect_timeout: float | None = None,
        read_timeout: float | None = None,
        resolve: Callable[[str, int], Awaitable[str]] | None = None,
    ) -> Response:
        """Send one request and return once the answer's headers are in.

        ``body`` as bytes is sent with its length; a stream is sent with ``content_length`` when
        given, else chunked. A reused connection that turns out closed before any answer byte is
        retried once on a new one when the body can be sent again (bytes); a stream cannot.
        ``resolve`` picks (and checks) the address a new connection goes to (SSRF: ``auth.urls``).
        """
        if isinstance(body, bytes):
            content_length = len(body)
        head = request_head(method, url, headers, content_length)
        ssl_ctx = _ssl_for(ssl_option) if url.https else None
        key = (url.https, url.host, url.port, id(ssl_ctx))
        while True:
            conn = await self._acquire(key, url, ssl_ctx, connect_timeout, resolve)
            conn.expecting = True
            try:
                if isinstance(body, bytes):
                    conn.write(head, body)
                    await conn.drain(read_timeout)
                else:
                    await self._send_stream(conn, head, body, content_length is None, read_timeout)
                await conn.wait_headers(read_timeout)
            except ConnectionClosed:
                conn.close()
                if conn.answered_early:  # the peer refused the body and closed while we sent it
                    return Response(self, key, conn, read_timeout)
                if conn.reused and not conn.received_any and isinstance(body, bytes):
                    continue  # the server had closed the idle connection: once more on a fresh one
                raise
            except BaseException:
                conn.close()
                raise
            return Response(self, key, conn, read_timeout)

    @staticmethod
    async def _send_stream(
        conn: _Connection, head: bytes, body: AsyncIterator[bytes], chunked: bool, timeout: float | None
    ) -> None:
        conn.write(head)
        async for piece in body:
            if not piece:
                continue
            if chunked:
                conn.write(b"%x\r\n" % len(piece), piece, b"\r\n")
            else:
                conn.write(piece)
            await conn.drain(timeout)
            if conn.answered_early:
                conn.body_cut = True  # the connection carries no more requests
                return
        if chunked:
            conn.write(b"0\r\n\r\n")
        await conn.drain(timeout)

    async def _acquire(
        self,
        key: tuple[object, ...],
        url: Target,
        ssl_ctx: ssl.SSLContext | None,
        timeout: float | None,
        resolve: Callable[[str, int], Awaitable[str]] | None = None,
    ) -> _Connection:
        if self._closed:
            raise HttpClientError("the HTTP pool is closed")
        loop = asyncio.get_running_loop()
        idle = self._idle.get(key)
        now = loop.time()
        while idle:
            conn = idle.pop()
            if conn.closed or conn.received_any or now - conn.idle_since > self._keepalive_s:
                conn.close()  # received_any: the peer wrote to an idle connection (closed too)
                continue
            return conn
        async with asyncio.timeout(timeout):
            _, conn = await loop.create_connection(
                lambda: _Connection(loop),
                await resolve(url.host, url.port) if resolve is not None else url.host,
                url.port,
                ssl=ssl_ctx,
                server_hostname=url.host if ssl_ctx is not None else None,
            )
        return conn

    def _put(self, key: tuple[object, ...], conn: _Connection) -> None:
        if self._closed:
            conn.close()
            return
        conn.recycle()
        self._idle.setdefault(key, deque()).append(conn)

    def close(self) -> None:
        self._closed = True
        for idle in self._idle.values():
            for conn in idle:
                conn.close()
        self._idle.clear()

    @property
    def closed(self) -> bool:
        return self._closed
