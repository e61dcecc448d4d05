"""Calls to Microsoft Graph: bearer tokens, throttling, and Graph's errors mapped onto the shared family.

Every call goes through :meth:`GraphClient.request`:

- 429, 503 and 504 wait ``Retry-After`` (seconds or an HTTP date; else capped exponential backoff
  with jitter), each wait capped at ``GRAPH_RETRY_MAX_S``, up to ``GRAPH_MAX_RETRIES`` times;
- 401 drops the cached token and tries once more with a fresh one;
- other answers map: 404 ``NotFoundError``, 412 ``ItemChangedError``, 410 ``resyncRequired``
  :class:`ResyncRequired`, 401/403 ``PermanentError`` (403), other 4xx ``PermanentError``,
  5xx and transport failures ``RetryableError`` (503).
"""

from __future__ import annotations

import email.utils
import logging
import ssl
import time
from typing import Any

import anyio
import httpx

from connectors.graph.auth import GraphTokens
from connectors.graph.settings import GraphSettings
from shared.backoff import full_jitter
from shared.connector.errors import ItemChangedError
from shared.errors import DsxError, NotFoundError, PermanentError, RetryableError

log = logging.getLogger(__name__)

THROTTLED = frozenset({429, 503, 504})


class ResyncRequired(PermanentError):
    """Graph expired the delta token (410 ``resyncRequired``): enumerate again from the start."""


class GraphError(PermanentError):
    """Graph refused the request (4xx); ``code`` is Graph's error code (``nameAlreadyExists``…)."""

    def __init__(self, message: str, *, status_code: int, code: str) -> None:
        super().__init__(message, status_code=status_code)
        self.code = code


def retry_after_s(response: httpx.Response) -> float | None:
    """``Retry-After`` in seconds (delta seconds or an HTTP date), None when absent or unreadable."""
    value = response.headers.get("Retry-After", "").strip()
    if not value:
        return None
    if value.isdigit():
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - time.time())


def error_of(response: httpx.Response) -> DsxError:
    """The shared error for a Graph error answer."""
    code, message = "", response.text[:300]
    try:
        body = response.json()
        error = body.get("error") if isinstance(body, dict) else None
        if isinstance(error, dict):
            code, message = str(error.get("code", "")), str(error.get("message", ""))[:300]
    except ValueError:
        pass
    text = (
        f"{response.request.method} {response.request.url.path} -> {response.status_code} {code}: {message}"
    )
    status = response.status_code
    if status == 404:
        return NotFoundError(f"not found ({text})", status_code=404)
    if status == 412:
        return ItemChangedError(f"item changed since it was scanned ({text})")
    if status == 410 and code.startswith("resync"):
        return ResyncRequired(f"delta token expired ({text})", status_code=410)
    if status in (401, 403):
        return PermanentError(
            f"Graph refused the credentials or their permissions ({text}); check the app registration's "
            "Graph application permissions (Sites.Read.All / Files.ReadWrite.All) and admin consent",
            status_code=403,
        )
    if status >= 500 or status in (408, 429):
        return RetryableError(f"Graph unavailable ({text})", status_code=503)
    return GraphError(
        f"Graph refused the request ({text})", status_code=409 if status == 409 else 400, code=code
    )


def _under(url: str, base: str) -> bool:
    try:
        target, root = httpx.URL(url), httpx.URL(base)
    except (httpx.InvalidURL, TypeError):
        return False
    prefix = root.path.rstrip("/") + "/"
    return (
        (target.scheme, target.host, target.port) == (root.scheme, root.host, root.port)
        and target.path.startswith(prefix)
        and "/../" not in target.path + "/"
    )


def _origin(url: str) -> str:
    """Scheme and host of ``url``, for a message (never its query: delta tokens live there)."""
    try:
        parsed = httpx.URL(url)
    except (httpx.InvalidURL, TypeError):
        return "a malformed URL"
    return f"{parsed.scheme}://{parsed.host}" + (f":{parsed.port}" if parsed.port else "")


class GraphClient:
    """One pooled HTTP client for Graph (bearer token) and one for pre-authenticated download URLs."""

    def __init__(
        self, settings: GraphSettings, tokens: GraphTokens, transport: httpx.AsyncBaseTransport | None = None
    ) -> None:
        verify: bool | ssl.SSLContext = True
        if settings.graph_ca_bundle:
            verify = ssl.create_default_context(cafile=settings.graph_ca_bundle)
        options: dict[str, Any] = {
            "timeout": httpx.Timeout(60.0, connect=10.0),
            "verify": verify,
            "transport": transport,
            "limits": httpx.Limits(max_connections=64, max_keepalive_connections=32),
            "headers": {"User-Agent": f"dsx-connect-{settings.name}"},
        }
        self.settings = settings
        self.tokens = tokens
        self.http = httpx.AsyncClient(base_url=settings.api_url, follow_redirects=False, **options)
        self.downloads = httpx.AsyncClient(follow_redirects=True, **options)
        #: how many throttled answers were waited out (tests and logs)
        self.throttled = 0

    async def request(
        self,
        method: str,
        url: str,
        *,
        json: Any = None,
        params: dict[str, Any] | None = None,
        headers: dict[str, str] | None = None,
    ) -> httpx.Response:
        """One Graph call with the token, throttling and 401 handling above; raises the mapped error.

        ``url`` is a path under the Graph endpoint, or an absolute link into it (``@odata.nextLink``,
        a delta link kept in the core): an absolute URL anywhere else is refused, never sent the
        token (a link is data: a forged cursor must not collect a tenant-wide bearer token)."""
        if "://" in url and not self.is_graph_url(url):
            raise PermanentError(f"refused a Graph link outside {self.settings.api_url}: {_origin(url)}")
        refreshed = False
        attempt = 0
        while True:
            sent = {**(headers or {}), "Authorization": f"Bearer {await self.tokens.token()}"}
            try:
                response = await self.http.request(method, url, json=json, params=params, headers=sent)
            except httpx.TimeoutException as exc:
                response = None
                failure: DsxError = RetryableError(f"Graph timed out: {type(exc).__name__}", status_code=503)
            except httpx.TransportError as exc:
                response = None
                failure = RetryableError(f"Graph unreachable: {type(exc).__name__}: {exc}", status_code=503)
            if response is not None:
                if response.status_code == 401 and not refreshed:
                    refreshed = True
                    self.tokens.invalidate()
                    log.info("Graph refused the token; fetching a new one")
                    continue
                if response.status_code < 400:
                    return response
                if response.status_code not in THROTTLED:
                    raise error_of(response)
                failure = error_of(response)
            if attempt >= self.settings.graph_max_retries:
                raise failure
            await self._wait(attempt, response)
            attempt += 1

    def is_graph_url(self, url: str) -> bool:
        """Whether ``url`` is an absolute link under the Graph endpoint (same scheme, host, port
        and version path)."""
        return _under(url, self.settings.api_url)

    async def _wait(self, attempt: int, response: httpx.Response | None) -> None:
        cap = self.settings.graph_retry_max_s
        hinted = retry_after_s(response) if response is not None else None
        delay = min(cap, hinted if hinted is not None else full_jitter(attempt + 1, 0.5, cap))
        if response is not None:
            self.throttled += 1
            log.warning(
                "Graph throttled the request; waiting",
                extra={
                    "status_code": response.status_code,
                    "delay_s": round(delay, 2),
                    "attempt": attempt + 1,
                },
            )
        await anyio.sleep(delay)

    async def json(self, method: str, url: str, **kwargs: Any) -> dict[str, Any]:
        """``request`` answering the JSON object (an empty dict for 204)."""
        response = await self.request(method, url, **kwargs)
        if response.status_code == 204 or not response.content:
            return {}
        body = response.json()
        return body if isinstance(body, dict) else {}

    async def download(self, url: str, first: int | None = None, last: int | None = None) -> bytes:
        """Bytes of a pre-authenticated download URL (no token), a range of them when given."""
        headers = {"Range": f"bytes={first}-{last}"} if first is not None and last is not None else {}
        attempt = 0
        while True:
            try:
                response = await self.downloads.get(url, headers=headers)
            except httpx.HTTPError as exc:
                if attempt >= self.settings.graph_max_retries:
                    raise RetryableError(
                        f"download failed: {type(exc).__name__}: {exc}", status_code=503
                    ) from None
                await self._wait(attempt, None)
                attempt += 1
                continue
            if response.status_code in THROTTLED and attempt < self.settings.graph_max_retries:
                await self._wait(attempt, response)
                attempt += 1
                continue
            if response.status_code >= 400:
                raise error_of(response)
            if headers and response.status_code != 206:
                raise RetryableError(
                    f"the download URL ignored the range ({response.status_code})", status_code=503
                )
            return response.content

    async def aclose(self) -> None:
        for client in (self.http, self.downloads):
            try:
                await client.aclose()
            except RuntimeError:  # its connections belonged to an event loop that has ended
                log.debug("Graph client closed after its event loop")
