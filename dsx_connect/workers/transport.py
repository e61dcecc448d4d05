"""The hot path's HTTP transport: one method, two implementations, picked by a setting.

The scan workers do two kinds of exchange, both through :class:`Transport.request`: a POST to a
connector whose answer (the file) is read whole or streamed, and a POST to the scanner whose body
is those bytes or that stream. ``DSXCONNECT_SCANNER__CLIENT`` picks the implementation:

- ``http1`` (default): :class:`dsx_connect.workers.http1.HttpPool`, the lean client chosen by
  measurement (docs/performance.md);
- ``aiohttp``: :class:`dsx_connect.workers.aiohttp_transport.AiohttpTransport`, the well-known
  client, kept so that ``inv bench --client aiohttp`` can show the lean one is still worth it.

Both connect directly: no proxy (see :mod:`dsx_connect.workers.proxy`), no redirects, no
decompression. Failures at the HTTP or connection level are ``OSError`` (``HttpClientError``) or
``TimeoutError``, whichever implementation raised them, so the hot path maps them once.
"""

from __future__ import annotations

import ssl
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from types import TracebackType
from typing import Literal, Protocol, runtime_checkable

from dsx_connect.workers.http1 import HttpPool, Target

ClientName = Literal["http1", "aiohttp"]
CLIENTS: tuple[ClientName, ...] = ("http1", "aiohttp")
Resolve = Callable[[str, int], Awaitable[str]]


class Answer(Protocol):
    """An answer whose body may still be on the connection; ``async with`` releases it."""

    status: int

    def header(self, name: str) -> str | None:
        """A header's value (case-insensitive name), or None."""
        ...

    @property
    def content_length(self) -> int | None: ...

    @property
    def content_type(self) -> str:
        """The media type, lower case, without parameters (``""`` when absent)."""
        ...

    async def read(self, limit: int | None = None) -> bytes:
        """The body, or its first ``limit`` bytes."""
        ...

    def iter_chunks(self) -> AsyncIterator[bytes]:
        """The body piece by piece, with back-pressure (never held whole)."""
        ...

    async def __aenter__(self) -> Answer: ...

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None: ...


@runtime_checkable
class Transport(Protocol):
    """What the hot path needs of an HTTP client: one request, its answer's head in, body pending."""

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
    ) -> Answer:
        """Send ``body`` (bytes with their length; a stream with ``content_length``, else chunked)
        and return once the answer's headers are in. ``resolve`` picks and checks the address a
        new connection goes to (SSRF: ``auth.urls``); ``ssl_option`` is a context, ``True`` (the
        system's trust store) or ``False`` (no checks, a lab only)."""
        ...


class ClosableTransport(Transport, Protocol):
    """A transport a process owns: closed when the process's loop goes away."""

    def close(self) -> None: ...

    @property
    def closed(self) -> bool: ...


def make_transport(name: ClientName) -> ClosableTransport:
    """A new transport of the kind ``DSXCONNECT_SCANNER__CLIENT`` names."""
    if name == "http1":
        return HttpPool()
    if name == "aiohttp":
        from dsx_connect.workers.aiohttp_transport import AiohttpTransport

        return AiohttpTransport()
    raise ValueError(f"DSXCONNECT_SCANNER__CLIENT: unknown client {name!r} (one of {', '.join(CLIENTS)})")


def available(name: ClientName) -> str | None:
    """Why ``name`` cannot be used in this installation, or None when it can."""
    if name == "aiohttp":
        try:
            import aiohttp  # noqa: F401
        except ImportError:
            return "aiohttp is not installed (pip install 'dsx-connect[aiohttp]')"
    return None


async def aclose(transport: ClosableTransport) -> None:
    """Close ``transport`` and wait until its connections are gone (a short-lived one's end)."""
    closing = getattr(transport, "aclose", None)
    if closing is not None:
        await closing()
    else:
        transport.close()
