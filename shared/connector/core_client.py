"""The connector's client of the core control plane (SPEC §4), over one pooled ``httpx.AsyncClient``.

Error map (what callers catch)::

    httpx.TimeoutException, httpx.TransportError (refused, reset, DNS) -> RetryableError
    HTTP 408, 425, 429, 5xx                                            -> RetryableError
    HTTP 404                                                           -> NotFoundError
    other HTTP 4xx                                                     -> PermanentError

:func:`retry` re-runs a call on ``RetryableError`` with capped exponential backoff and full
jitter; permanent errors go straight through.
"""

from __future__ import annotations

import logging
import ssl
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, TypeVar
from urllib.parse import quote

import anyio
import httpx
import pydantic_core

from shared.backoff import full_jitter
from shared.connector.settings import CORE_API_PREFIX, ConnectorSettings
from shared.errors import NotFoundError, PermanentError, RetryableError
from shared.logging import request_id_var
from shared.models import ConnectorInstance, StatusResponse

_JSON = {"Content-Type": "application/json"}

log = logging.getLogger(__name__)
T = TypeVar("T")

DEFAULT_BATCH_SIZE = 64
MAX_BATCH_SIZE = 5000  # ScanRequestBatch.requests max_length


@dataclass(frozen=True, slots=True)
class BatchPlan:
    """How to submit: batches of ``size`` to ``/scan/request_batch``, or single requests."""

    enabled: bool = True
    size: int = DEFAULT_BATCH_SIZE


@dataclass(frozen=True, slots=True)
class JobFlags:
    """A job's control flags as ``GET /scan/jobs/{id}/raw`` reports them."""

    paused: bool = False
    cancelled: bool = False


#: the longest ``Retry-After`` a connector honours (a longer one is read as this)
RETRY_AFTER_MAX_S = 60.0


class CoreBusy(RetryableError):
    """429: the core is up and holds back new work (SPEC §5 back-pressure: too many items in
    flight, a paused job's items included). Waited out, not charged to the retry budget, which is
    for a core that fails."""

    def __init__(self, message: str, *, retry_after_s: float) -> None:
        super().__init__(message, status_code=429)
        self.retry_after_s = retry_after_s


class SubmitStopped(Exception):
    """The wait for a busy core was ended by the caller (its job was cancelled)."""


def _retry_after(response: httpx.Response) -> float:
    try:
        return min(max(float(response.headers.get("Retry-After", "")), 0.0), RETRY_AFTER_MAX_S)
    except ValueError:  # absent, or an HTTP date: the backoff decides
        return 0.0


def check_response(response: httpx.Response) -> None:
    """Raise the error family member for a non-2xx/3xx answer (pure; no I/O)."""
    code = response.status_code
    if code < 400:
        return
    message = f"{response.request.method} {response.request.url.path} -> {code}: {_reason(response)}"
    if code == 429:
        raise CoreBusy(message, retry_after_s=_retry_after(response))
    if code in (408, 425) or code >= 500:
        raise RetryableError(message, status_code=code)
    if code == 404:
        raise NotFoundError(message, status_code=code)
    raise PermanentError(message, status_code=code)


def _reason(response: httpx.Response) -> str:
    try:
        body = response.json()
    except ValueError:
        return response.text[:200]
    if isinstance(body, dict):
        return str(body.get("message") or body.get("detail") or body)[:300]
    return str(body)[:300]


def _flag(value: Any) -> bool:
    return str(value).strip().lower() in ("1", "true", "yes")


def plan_from_config(config: dict[str, Any], override: int | None = None) -> BatchPlan:
    """The batch plan from the core's ``GET /config`` JSON (1.x keys under ``workers``)."""
    found = config.get("workers")
    workers: dict[str, Any] = found if isinstance(found, dict) else {}
    enabled = workers.get("scan_request_batch_enabled", True)
    enabled = enabled if isinstance(enabled, bool) else _flag(enabled)
    default = _positive_int(workers.get("scan_request_batch_default_size")) or DEFAULT_BATCH_SIZE
    most = min(_positive_int(workers.get("scan_request_batch_max_size")) or MAX_BATCH_SIZE, MAX_BATCH_SIZE)
    return BatchPlan(enabled=enabled, size=max(1, min(override or default, most)))


def _positive_int(value: Any) -> int | None:
    try:
        number = int(value)
    except (TypeError, ValueError):
        return None
    return number if number > 0 else None


def unbind(response: httpx.Response) -> None:
    """Let reference counting free a read ``response`` (and the request body it holds) at once.

    httpx binds every response to its stream (response -> stream -> response): a cycle, so each
    response, with the batch of scan requests its ``request`` carries, would wait for the cyclic
    collector, which the services run rarely (``shared.gc_tuning``). Over a full scan that garbage
    grew with the store (tens of MB per 100,000 files). The body is read, so the stream is spent.
    """
    response.stream = httpx.ByteStream(response.content)


async def retry(
    call: Callable[[], Awaitable[T]],
    *,
    what: str,
    max_elapsed_s: float,
    base_s: float = 0.2,
    cap_s: float = 10.0,
    stop_while_busy: Callable[[], Awaitable[bool]] | None = None,
) -> T:
    """Await ``call()`` until it succeeds, retrying ``RetryableError`` for up to ``max_elapsed_s``.

    A busy core (:class:`CoreBusy`) is waited out for as long as it lasts (at least its
    ``Retry-After``): that time is not charged to ``max_elapsed_s``. ``stop_while_busy`` is asked
    before each such wait (a full scan: it waits while its job is paused) and ends it with
    :class:`SubmitStopped` when it answers True (its job was cancelled)."""
    deadline = time.monotonic() + max_elapsed_s
    attempt = 0
    while True:
        try:
            return await call()
        except CoreBusy as exc:
            attempt += 1
            if stop_while_busy is not None and await stop_while_busy():
                raise SubmitStopped(what) from None
            delay = max(exc.retry_after_s, full_jitter(attempt + 1, base_s, cap_s))
            deadline = max(deadline, time.monotonic() + max_elapsed_s)
            log.info(
                "%s: the core is busy, waiting", what, extra={"attempt": attempt, "wait_s": round(delay, 1)}
            )
            await anyio.sleep(delay)
        except RetryableError as exc:
            attempt += 1
            delay = full_jitter(attempt + 1, base_s, cap_s)  # the first wait: up to twice base_s
            if time.monotonic() + delay > deadline:
                raise
            log.warning("%s failed, retrying", what, extra={"attempt": attempt, "error": exc.message})
            await anyio.sleep(delay)


class CoreClient:
    """Calls a connector makes to the core; every method raises the error family above."""

    def __init__(
        self,
        base_url: str,
        *,
        timeout_s: float = 30.0,
        verify: bool | ssl.SSLContext = True,
        auth: httpx.Auth | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
        user_agent: str = "dsx-connect-connector",
    ) -> None:
        self.base_url = base_url.rstrip("/") + CORE_API_PREFIX
        self._client = httpx.AsyncClient(
            base_url=self.base_url,
            timeout=httpx.Timeout(timeout_s, connect=min(timeout_s, 5.0)),
            verify=verify,
            auth=auth,
            transport=transport,
            limits=httpx.Limits(max_connections=64, max_keepalive_connections=32),
            headers={"User-Agent": user_agent},
        )

    @classmethod
    def from_settings(
        cls,
        settings: ConnectorSettings,
        *,
        auth: httpx.Auth | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> CoreClient:
        verify: bool | ssl.SSLContext = settings.verify_tls
        if settings.verify_tls and settings.ca_bundle:
            verify = ssl.create_default_context(cafile=settings.ca_bundle)
        return cls(
            settings.dsx_connect_url,
            timeout_s=settings.request_timeout_s,
            verify=verify,
            auth=auth,
            transport=transport,
            user_agent=f"dsx-connect-{settings.name}",
        )

    async def request(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        """One call under the API prefix; transport failures become ``RetryableError``."""
        headers = kwargs.pop("headers", None) or {}
        if (rid := request_id_var.get()) is not None:
            headers.setdefault("X-Request-Id", rid)
        try:
            response = await self._client.request(method, path, headers=headers, **kwargs)
        except httpx.TimeoutException as exc:
            raise RetryableError(f"{method} {path}: timed out ({type(exc).__name__})") from exc
        except httpx.TransportError as exc:
            raise RetryableError(f"{method} {path}: {type(exc).__name__}: {exc}") from exc
        unbind(response)
        check_response(response)
        return response

    async def register(self, instance: ConnectorInstance) -> int:
        """Register or refresh (heartbeat); the HTTP status (201 first time, 200 after)."""
        response = await self.request("POST", "/connectors/register", json=instance.model_dump(mode="json"))
        return response.status_code

    async def unregister(self, uuid: str) -> None:
        await self.request("DELETE", f"/connectors/unregister/{quote(uuid, safe='')}")

    async def submit_batch(self, requests: list[dict[str, Any]]) -> StatusResponse:
        # pydantic-core's encoder: the same compact UTF-8 JSON as httpx's ``json=``, at ~0.4 of the CPU
        # for a full scan's batches of 1,000
        body = pydantic_core.to_json({"requests": requests})
        response = await self.request("POST", "/scan/request_batch", content=body, headers=dict(_JSON))
        return _status(response)

    async def submit(self, request: dict[str, Any]) -> StatusResponse:
        response = await self.request("POST", "/scan/request", json=request)
        return _status(response)

    async def enqueue_done(self, job_id: str, enqueued_total: int, error: str | None = None) -> None:
        """Report the end of enumeration; with ``error``, that it failed (the core fails the job)."""
        body: dict[str, Any] = {"enqueued_total": enqueued_total}
        if error is not None:
            body |= {"status": "failed", "error": error[:2000]}
        response = await self.request("POST", f"/scan/jobs/{quote(job_id, safe='')}/enqueue_done", json=body)
        # the 1.x line operators grep for
        log.info(
            "enqueue_done posted job=%s enqueued_total=%s status=%s",
            job_id,
            enqueued_total,
            response.status_code,
        )

    async def batch_plan(self, override: int | None = None) -> BatchPlan:
        """Batching as the core configures it; the default plan when it cannot be read."""
        try:
            config = (await self.request("GET", "/config")).json()
        except (RetryableError, PermanentError, ValueError) as exc:
            log.info("core batching config unavailable, using defaults", extra={"error": str(exc)})
            return BatchPlan(size=max(1, min(override or DEFAULT_BATCH_SIZE, MAX_BATCH_SIZE)))
        return plan_from_config(config if isinstance(config, dict) else {}, override)

    async def job_flags(self, job_id: str) -> JobFlags:
        """Pause/cancel flags of a job; a job the core does not know has none."""
        try:
            body = (await self.request("GET", f"/scan/jobs/{quote(job_id, safe='')}/raw")).json()
        except NotFoundError:
            return JobFlags()
        data = body.get("data", body) if isinstance(body, dict) else {}
        data = data if isinstance(data, dict) else {}
        status = str(data.get("status", "")).lower()
        return JobFlags(
            paused=_flag(data.get("paused")) or status == "paused",
            cancelled=_flag(data.get("cancel")) or _flag(data.get("cancelled")) or status == "cancelled",
        )

    async def get_state(self, uuid: str, namespace: str, key: str) -> str | None:
        """A value kept with ``put_state`` (SPEC §4 KV), None when there is none.

        The core answers ``{"value": ...}`` (as 1.x); a plain-text answer (an older core) is read too.
        """
        path = f"/connectors/state/{quote(uuid, safe='')}/{quote(namespace, safe='')}/{quote(key, safe='')}"
        try:
            response = await self.request("GET", path)
        except NotFoundError:
            return None
        try:
            body = response.json()
        except ValueError:
            return response.text
        value = body.get("value") if isinstance(body, dict) else None
        return value if isinstance(value, str) else None

    async def put_state(self, uuid: str, namespace: str, key: str, value: str) -> None:
        """Keep ``value`` (at most 64 KiB) in the core across this connector's restarts."""
        path = f"/connectors/state/{quote(uuid, safe='')}/{quote(namespace, safe='')}/{quote(key, safe='')}"
        await self.request("PUT", path, content=value.encode(), headers={"Content-Type": "text/plain"})

    async def aclose(self) -> None:
        await self._client.aclose()


def _status(response: httpx.Response) -> StatusResponse:
    try:
        return StatusResponse.model_validate(response.json())
    except ValueError:
        return StatusResponse(status="success", message=f"accepted ({response.status_code})")
