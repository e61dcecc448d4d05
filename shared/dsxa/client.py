"""A DSXA client on a pooled ``httpx`` client: streams the body, maps errors (SPEC §3).

Used for control-plane calls (``/test/dsxa-connection``) and by tools; the scan workers' hot path
uses the same protocol functions over aiohttp (see ``dsx_connect.workers.hot_path``), chosen by
measurement (PERFORMANCE.md).
"""

from __future__ import annotations

from collections.abc import AsyncIterable, Iterable

import httpx

from shared.dsxa.protocol import classify_status, parse_verdict, scan_headers
from shared.errors import RetryableError
from shared.models import DsxaVerdict

Body = bytes | Iterable[bytes]
AsyncBody = bytes | AsyncIterable[bytes]


class DsxaClient:
    """Synchronous DSXA client. One instance per process; it keeps a connection pool."""

    def __init__(
        self,
        scan_binary_url: str,
        *,
        auth_token: str | None = None,
        protected_entity: int | None = 1,
        timeout_s: float = 120.0,
        verify: bool | str = True,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        self.scan_binary_url = scan_binary_url
        self.auth_token = auth_token
        self.protected_entity = protected_entity
        self._client = httpx.Client(
            timeout=httpx.Timeout(timeout_s, connect=min(10.0, timeout_s)),
            limits=httpx.Limits(max_connections=32, max_keepalive_connections=16),
            verify=verify,
            transport=transport,
        )

    def scan_binary(self, body: Body, metadata: str | None = None) -> DsxaVerdict:
        """Scan raw bytes, or an iterable of chunks (sent with chunked transfer encoding)."""
        headers = scan_headers(self.auth_token, self.protected_entity, metadata)
        try:
            response = self._client.post(self.scan_binary_url, content=body, headers=headers)
        except httpx.TransportError as exc:
            raise RetryableError(f"scanner unreachable: {exc!r}") from None
        if (error := classify_status(response.status_code, response.content)) is not None:
            raise error
        return parse_verdict(response.content)

    def close(self) -> None:
        self._client.close()

    def __enter__(self) -> DsxaClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class AsyncDsxaClient:
    """Asynchronous twin of :class:`DsxaClient` for FastAPI handlers."""

    def __init__(
        self,
        scan_binary_url: str,
        *,
        auth_token: str | None = None,
        protected_entity: int | None = 1,
        timeout_s: float = 120.0,
        verify: bool | str = True,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self.scan_binary_url = scan_binary_url
        self.auth_token = auth_token
        self.protected_entity = protected_entity
        self._client = httpx.AsyncClient(
            timeout=httpx.Timeout(timeout_s, connect=min(10.0, timeout_s)),
            limits=httpx.Limits(max_connections=32, max_keepalive_connections=16),
            verify=verify,
            transport=transport,
        )

    async def ascan_binary(self, body: AsyncBody, metadata: str | None = None) -> DsxaVerdict:
        headers = scan_headers(self.auth_token, self.protected_entity, metadata)
        try:
            response = await self._client.post(self.scan_binary_url, content=body, headers=headers)
        except httpx.TransportError as exc:
            raise RetryableError(f"scanner unreachable: {exc!r}") from None
        if (error := classify_status(response.status_code, response.content)) is not None:
            raise error
        return parse_verdict(response.content)

    async def aclose(self) -> None:
        await self._client.aclose()
