"""A full scan: enumerate the asset, submit every item in batches, honour pause/cancel, report the total."""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from typing import Any, Literal

import anyio
import anyio.abc

from shared.connector.base import Connector, Item
from shared.connector.core_client import CoreClient, SubmitStopped, retry
from shared.connector.submit import Submitter, scan_requests
from shared.errors import DsxError
from shared.logging import job_id_var

log = logging.getLogger(__name__)

ScanState = Literal["running", "paused", "cancelled", "completed", "failed"]


@dataclass
class ScanProgress:
    """What a full scan has done so far (``GET /{name}/`` lists the running ones)."""

    job_id: str
    limit: int | None = None
    state: ScanState = "running"
    enumerated: int = 0
    submitted: int = 0
    started: float = field(default_factory=time.time)
    finished: float | None = None
    error: str | None = None

    @property
    def active(self) -> bool:
        return self.state in ("running", "paused")


class FullScan:
    """Runs one full scan job; ``run()`` is the body of its background task."""

    def __init__(
        self, connector: Connector, client: CoreClient, submitter: Submitter, progress: ScanProgress
    ):
        self.connector = connector
        self.client = client
        self.submitter = submitter
        self.progress = progress

    async def run(self) -> None:
        progress = self.progress
        job_id_var.set(progress.job_id)
        log.info("full scan started", extra={"limit": progress.limit})
        try:
            await self._enumerate_and_submit()
        except DsxError as exc:
            return await self._enumeration_failed(exc.message)
        except Exception as exc:  # a connector bug or a storage error: classify, record, stop
            return await self._enumeration_failed(self.connector.classify_error(exc).message, exc_info=True)
        try:
            await retry(
                lambda: self.client.enqueue_done(progress.job_id, progress.submitted),
                what="reporting enqueue_done",
                max_elapsed_s=self.connector.settings.submit_retry_max_s,
            )
        except DsxError as exc:
            return self._fail(f"enqueue_done not reported: {exc.message}")
        if progress.state != "cancelled":
            progress.state = "completed"
        progress.finished = time.time()
        log.info(
            "full scan %s",
            progress.state,
            extra={
                "submitted": progress.submitted,
                "duration_s": round(progress.finished - progress.started, 3),
            },
        )

    async def _enumerate_and_submit(self) -> None:
        listing_failed: Exception | None = None
        whole = False
        try:
            async with anyio.create_task_group() as group:
                try:
                    whole = await self._enumerate_into(group)
                except Exception as exc:  # the batches already listed still land before it is told
                    listing_failed = exc
        except BaseExceptionGroup as failed:  # a failed submission speaks for the scan
            raise failed.exceptions[0] from None
        if listing_failed is not None:
            raise listing_failed
        progress = self.progress
        # a connector may now keep its cursor (Graph's delta link), and later scans list only what
        # changed since: only once the core took every item listed, never after a cancel (a batch
        # stopped while the core was busy, or refused, would be skipped by every later scan)
        if whole and progress.state != "cancelled" and progress.submitted == progress.enumerated:
            await self.connector.scan_completed()
        elif whole:
            log.info(
                "full scan not complete: the connector keeps no cursor",
                extra={
                    "submitted": progress.submitted,
                    "enumerated": progress.enumerated,
                    "state": progress.state,
                },
            )

    async def _enumerate_into(self, group: anyio.abc.TaskGroup) -> bool:
        """Enumerate, submitting each batch in ``group`` while the next one is listed: up to
        ``FULL_SCAN_BATCHES_IN_FLIGHT`` batches at once (the core answers a batch it serves from
        its scan cache only once the results are stored). A failed batch cancels the rest.
        Returns whether the whole asset was listed (no limit reached, not cancelled)."""
        progress, settings = self.progress, self.connector.settings
        plan = await self.client.batch_plan(settings.scan_batch_size)
        instance = self.connector.instance().model_dump(mode="json")
        in_flight = anyio.Semaphore(settings.full_scan_batches_in_flight)
        batch: list[Item] = []
        batches = 0

        async def submit(requests: list[dict[str, Any]]) -> None:
            try:
                # a busy core (429: too many items in flight, those of this job held by a pause
                # included) is waited out for as long as the job is paused, never failed
                accepted = await self.submitter.submit(requests, plan, stop_while_busy=self._stop_requested)
                progress.submitted += accepted  # not `+= await`: that reads the count before awaiting
            except SubmitStopped:
                pass  # cancelled while the core was busy: the enumeration stops at its next check
            finally:
                in_flight.release()

        async def flush() -> None:
            nonlocal batch, batches
            requests = scan_requests(
                batch,
                connector=instance,
                connector_url=settings.connector_url,
                job_id=progress.job_id,
                first_seq=progress.enumerated - len(batch) + 1,
            )
            batch = []
            await in_flight.acquire()
            group.start_soon(submit, requests)
            batches += 1

        if await self._stop_requested():
            return False
        items = self.connector.scan_items()
        whole = True
        try:
            async for item in items:
                if progress.limit is not None and progress.enumerated >= progress.limit:
                    whole = False
                    break
                progress.enumerated += 1
                batch.append(item)
                if len(batch) >= plan.size:
                    await flush()
                    if batches % settings.job_control_every_batches == 0 and await self._stop_requested():
                        return False
        finally:  # release directory handles or pagers now, not when garbage-collected
            aclose = getattr(items, "aclose", None)
            if aclose is not None:
                await aclose()
        if batch:
            await flush()
        return whole

    async def _stop_requested(self) -> bool:
        """Read the job's flags; wait while it is paused; True once it is cancelled."""
        progress, poll_s = self.progress, self.connector.settings.job_control_poll_s
        while True:
            try:
                flags = await self.client.job_flags(progress.job_id)
            except DsxError as exc:  # flags unreadable: keep scanning rather than stall
                log.debug("job flags unavailable", extra={"error": exc.message})
                return False
            if flags.cancelled:
                progress.state = "cancelled"
                log.info("full scan cancelled by the core", extra={"submitted": progress.submitted})
                return True
            if not flags.paused:
                if progress.state == "paused":
                    log.info("full scan resumed")
                progress.state = "running"
                return False
            if progress.state != "paused":
                log.info("full scan paused", extra={"submitted": progress.submitted})
            progress.state = "paused"
            await anyio.sleep(poll_s)

    async def _enumeration_failed(self, message: str, exc_info: bool = False) -> None:
        """Record the failure, and tell the core (its job fails with the reason; what was submitted is scanned)."""
        self._fail(message, exc_info=exc_info)
        progress = self.progress
        try:
            await retry(
                lambda: self.client.enqueue_done(progress.job_id, progress.submitted, error=message),
                what="reporting the failed enumeration",
                max_elapsed_s=self.connector.settings.submit_retry_max_s,
            )
        except DsxError as exc:
            log.error("failed enumeration not reported to the core", extra={"error": exc.message})

    def _fail(self, message: str, exc_info: bool = False) -> None:
        progress = self.progress
        progress.state, progress.error, progress.finished = "failed", message, time.time()
        log.error(
            "full scan failed",
            exc_info=exc_info,
            extra={"error": message, "submitted": progress.submitted, "enumerated": progress.enumerated},
        )
