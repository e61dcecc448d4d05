"""Turn items into scan requests and get the core to accept them, losing none when the core blips."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Iterable
from typing import Any, TypeVar

import anyio

from shared.connector.base import Item
from shared.connector.core_client import BatchPlan, CoreClient, retry
from shared.connector.settings import ConnectorSettings
from shared.errors import NotFoundError, PermanentError, RetryableError

log = logging.getLogger(__name__)

_AUTH_FAILURES = (401, 403)
T = TypeVar("T")


def scan_requests(
    items: Iterable[Item],
    *,
    connector: dict[str, Any],
    connector_url: str,
    job_id: str | None,
    first_seq: int = 1,
) -> list[dict[str, Any]]:
    """ScanRequest JSON bodies (SPEC §4) for ``items``.

    Items of a full scan carry ``job_item_id`` = their 1-based position in the job, so the core
    can drop a resubmitted duplicate, and ``item_version`` when the listing gave it; change events carry no job (the core adds them to the
    connector's rolling monitor job, ``dsx_connect.state.monitor_jobs``).
    """
    requests = []
    for seq, item in enumerate(items, start=first_seq):
        request = {
            "connector": connector,
            "location": item.location,
            "metainfo": item.metainfo,
            "connector_url": connector_url,
            "size_in_bytes": item.size,
            "scan_job_id": job_id,
            "job_item_id": str(seq) if job_id else None,
        }
        if item.version is not None:  # the core's unchanged-object index keys on it
            request["item_version"] = item.version
        requests.append(request)
    return requests


class Submitter:
    """Submits scan requests in batches (or one by one when the core has batching off).

    A batch that fails transiently is retried with capped backoff for ``SUBMIT_RETRY_MAX_S``;
    after that the ``RetryableError`` propagates and the caller stops. A batch the core refuses
    (4xx) is resubmitted item by item so that one bad item does not drop its batch-mates; a
    refused item is logged and skipped. 401/403 propagate at once (nothing will get through).

    A 404 says the core does not know this connector (its registration expired with missed
    heartbeats, or Redis lost it): nothing about the items, so it is retried like a 503 after
    ``on_unknown`` (the runtime re-registers), never taken as the items' refusal.
    """

    def __init__(
        self,
        client: CoreClient,
        settings: Callable[[], ConnectorSettings],
        on_unknown: Callable[[], None] = lambda: None,
    ) -> None:
        self.client = client
        self._settings = settings
        self._on_unknown = on_unknown

    async def _known(self, call: Callable[[], Awaitable[T]]) -> T:
        try:
            return await call()
        except NotFoundError as exc:
            self._on_unknown()
            raise RetryableError(
                f"the core does not know this connector (registering again): {exc.message}", status_code=503
            ) from exc

    async def submit(
        self,
        requests: list[dict[str, Any]],
        plan: BatchPlan,
        *,
        retry_for_s: float | None = None,
        stop_while_busy: Callable[[], Awaitable[bool]] | None = None,
    ) -> int:
        """Submit ``requests``; the number the core accepted.

        Transient failures are retried for ``retry_for_s`` (default ``SUBMIT_RETRY_MAX_S``), then the
        ``RetryableError`` propagates: none of the items was refused. A busy core (429) is waited
        out, asking ``stop_while_busy`` first (``core_client.retry``).
        """
        if not requests:
            return 0
        budget = self._settings().submit_retry_max_s if retry_for_s is None else retry_for_s
        if plan.enabled:
            try:
                await retry(
                    lambda: self._known(lambda: self.client.submit_batch(requests)),
                    what=f"submitting a batch of {len(requests)}",
                    max_elapsed_s=budget,
                    stop_while_busy=stop_while_busy,
                )
                return len(requests)
            except PermanentError as exc:
                if exc.status_code in _AUTH_FAILURES:
                    raise
                log.warning(
                    "core refused a batch; submitting its items one by one", extra={"error": exc.message}
                )
        return await self._submit_each(requests, budget, stop_while_busy)

    async def _submit_each(
        self,
        requests: list[dict[str, Any]],
        budget: float,
        stop_while_busy: Callable[[], Awaitable[bool]] | None = None,
    ) -> int:
        settings = self._settings()
        limiter = anyio.CapacityLimiter(settings.full_scan_enqueue_concurrency)
        accepted = 0

        async def submit_one(request: dict[str, Any]) -> None:
            nonlocal accepted
            async with limiter:
                try:
                    await retry(
                        lambda: self._known(lambda: self.client.submit(request)),
                        what=f"submitting {request['location']!r}",
                        max_elapsed_s=budget,
                        stop_while_busy=stop_while_busy,
                    )
                except PermanentError as exc:
                    if exc.status_code in _AUTH_FAILURES:
                        raise
                    log.error(
                        "core refused a scan request; item skipped",
                        extra={"location": request["location"], "error": exc.message},
                    )
                    return
                accepted += 1

        try:
            async with anyio.create_task_group() as group:
                for request in requests:
                    group.start_soon(submit_one, request)
        except BaseExceptionGroup as failed:  # the first failure speaks for the batch
            raise failed.exceptions[0] from None
        return accepted
