"""A DSXA client on a pooled ``httpx`` client: streams the body, maps errors (SPEC §3).

Used for control-plane calls (``/test/dsxa-connection``) and by tools; the scan workers' hot path
uses the same protocol functions over a lean HTTP/1.1 client (``dsx_connect.workers.http1``), chosen
by measurement (docs/performance.md).
"""

from __future__ import annotations

import ssl
from collections.abc import AsyncIterable, Iterable

import httpx

from shared.dsxa.protocol import classify_status, parse_verdict, scan_headers
from shared.errors import RetryableError
from shared.models import DsxaVerdict

Body = bytes | Iterable[bytes]
AsyncBody = bytes | AsyncIterable[bytes]


class _DsxaClientBase:
    """What both clients share: target, credentials, pool limits and how an answer is read."""

    def __init__(
        self, scan_binary_url: str, auth_token: str | None, protected_entity: int | None, timeout_s: float
    ) -> None:
        self.scan_binary_url = scan_binary_url
        self.auth_token = auth_token
        self.protected_entity = protected_entity
        self._timeout = httpx.Timeout(timeout_s, connect=min(10.0, timeout_s))
        self._limits = httpx.Limits(max_connections=32, max_keepalive_connections=16)

    def _headers(self, metadata: str | None) -> dict[str, str]:
        return scan_headers(self.auth_token, self.protected_entity, metadata)

    @staticmethod
    def _verdict(response: httpx.Response) -> DsxaVerdict:
        if (error := classify_status(response.status_code, response.content)) is not None:
            raise error
        return parse_verdict(response.content)


class DsxaClient(_DsxaClientBase):
    """Synchronous DSXA client. One instance per process; it keeps a connection pool."""

    def __init__(
        self,
        scan_binary_url: str,
        *,
        auth_token: str | None = None,
        protected_entity: int | None = 1,
        timeout_s: float = 120.0,
        verify: bool | str | ssl.SSLContext = True,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        super().__init__(scan_binary_url, auth_token, protected_entity, timeout_s)
        self._client = httpx.Client(
            timeout=self._timeout, limits=self._limits, verify=verify, transport=transport
        )

    def scan_binary(self, body: Body, metadata: str | None = None) -> DsxaVerdict:
        """Scan raw bytes, or an iterable of chunks (sent with chunked transfer encoding)."""
        try:
            response = self._client.post(self.scan_binary_url, content=body, headers=self._headers(metadata))
        except httpx.TransportError as exc:
            raise RetryableError(f"scanner unreachable: {exc!r}") from None
        return self._verdict(response)

    def close(self) -> None:
        self._client.close()

    def __enter__(self) -> DsxaClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class AsyncDsxaClient(_DsxaClientBase):
    """Asynchronous twin of :class:`DsxaClient` for FastAPI handlers."""

    def __init__(
        self,
        scan_binary_url: str,
        *,
        auth_token: str | None = None,
        protected_entity: int | None = 1,
        timeout_s: float = 120.0,
        verify: bool | str | ssl.SSLContext = True,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        super().__init__(scan_binary_url, auth_token, protected_entity, timeout_s)
        self._client = httpx.AsyncClient(
            timeout=self._timeout, limits=self._limits, verify=verify, transport=transport
        )

    async def ascan_binary(self, body: AsyncBody, metadata: str | None = None) -> DsxaVerdict:
        """Scan raw bytes, or an async iterable of chunks (chunked transfer encoding)."""
        try:
            response = await self._client.post(
                self.scan_binary_url, content=body, headers=self._headers(metadata)
            )
        except httpx.TransportError as exc:
            raise RetryableError(f"scanner unreachable: {exc!r}") from None
        return self._verdict(response)

    async def aclose(self) -> None:
        await self._client.aclose()
