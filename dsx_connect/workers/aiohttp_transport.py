"""The hot-path transport on aiohttp (``DSXCONNECT_SCANNER__CLIENT=aiohttp``).

Kept beside the lean client so that the measurement that chose that one can be repeated
(``inv bench --client aiohttp``). It behaves as :class:`dsx_connect.workers.http1.HttpPool` does:
direct connections (``trust_env=False``: no proxy), no redirects, no decompression, a connect and
a per-read timeout, addresses checked by ``resolve`` when given, and aiohttp's errors raised as
``HttpClientError`` (an ``OSError``) so that the hot path maps them as the lean client's.
"""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import AsyncIterator, Mapping
from types import TracebackType

import aiohttp

from dsx_connect.workers.http1 import HttpClientError, Target
from dsx_connect.workers.transport import Resolve

_closing: set[asyncio.Task[None]] = set()
_SKIP_AUTO_HEADERS = ("User-Agent", "Accept", "Accept-Encoding", "Content-Type")


def _failure(exc: aiohttp.ClientError) -> OSError:
    if isinstance(exc, OSError):  # ClientOSError, ServerTimeoutError (a TimeoutError too)
        return exc
    return HttpClientError(f"{type(exc).__name__}: {exc}")


class AiohttpAnswer:
    """An aiohttp response seen through the hot path's ``Answer`` protocol."""

    def __init__(self, response: aiohttp.ClientResponse) -> None:
        self._response = response
        self.status = response.status

    def header(self, name: str) -> str | None:
        return self._response.headers.get(name)

    @property
    def content_length(self) -> int | None:
        value = self._response.headers.get("Content-Length")
        return int(value) if value is not None and value.isdigit() else None

    @property
    def content_type(self) -> str:
        value = self._response.headers.get("Content-Type", "")
        return value.split(";", 1)[0].strip().lower()

    async def read(self, limit: int | None = None) -> bytes:
        try:
            if limit is None:
                return await self._response.read()
            parts: list[bytes] = []
            size = 0
            while size < limit:
                chunk = await self._response.content.read(limit - size)
                if not chunk:
                    break
                parts.append(chunk)
                size += len(chunk)
            return b"".join(parts)
        except aiohttp.ClientError as exc:
            raise _failure(exc) from None

    async def iter_chunks(self) -> AsyncIterator[bytes]:
        try:
            async for chunk in self._response.content.iter_any():
                yield chunk
        except aiohttp.ClientError as exc:
            raise _failure(exc) from None

    async def __aenter__(self) -> AiohttpAnswer:
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if exc_type is not None:
            self._response.close()  # an unread body would corrupt the next exchange
        else:
            self._response.release()


class AiohttpTransport:
    """One ``aiohttp.ClientSession`` per event loop, created on first use."""

    def __init__(self) -> None:
        self._session: aiohttp.ClientSession | None = None
        self._closed = False

    def _session_for_loop(self) -> aiohttp.ClientSession:
        if self._closed:
            raise HttpClientError("the HTTP transport is closed")
        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(limit=0, ttl_dns_cache=10),
                trust_env=False,
                auto_decompress=False,
                skip_auto_headers=_SKIP_AUTO_HEADERS,
            )
        return self._session

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
        resolve: Resolve | None = None,
    ) -> AiohttpAnswer:
        session = self._session_for_loop()
        sent = dict(headers)
        sent["Host"] = url.host_header.decode("idna")
        host = await resolve(url.host, url.port) if resolve is not None else url.host
        shown = f"[{host}]" if ":" in host else host
        address = f"{'https' if url.https else 'http'}://{shown}:{url.port}{url.path.decode('ascii')}"
        if not isinstance(body, bytes) and content_length is not None:
            sent["Content-Length"] = str(content_length)
        try:
            response = await session.request(
                method,
                address,
                data=body,
                headers=sent,
                allow_redirects=False,
                ssl=ssl_option if url.https else True,
                server_hostname=url.host if url.https else None,
                timeout=aiohttp.ClientTimeout(total=None, connect=connect_timeout, sock_read=read_timeout),
            )
        except aiohttp.ClientError as exc:
            raise _failure(exc) from None
        except TimeoutError as exc:
            raise TimeoutError(f"no answer within the timeout: {exc}") from None
        return AiohttpAnswer(response)

    def close(self) -> None:
        """Close the session: at once when no loop runs here, else as a task of the running loop."""
        self._closed = True
        session, self._session = self._session, None
        if session is None or session.closed:
            return
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:  # the session's loop is not running: its sockets go with it
            session.detach()
            return
        task = loop.create_task(session.close())
        _closing.add(task)  # held until done: a task only weakly referenced may vanish
        task.add_done_callback(_closing.discard)

    async def aclose(self) -> None:
        self._closed = True
        session, self._session = self._session, None
        if session is not None:
            await session.close()

    @property
    def closed(self) -> bool:
        return self._closed
