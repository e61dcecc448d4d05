"""The connector's background life: registration heartbeat, change watching, full-scan tasks."""

from __future__ import annotations

import asyncio
import logging
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from contextlib import aclosing
from typing import Any

import anyio
import httpx

from shared.connector.base import Connector, ConnectorState, Item
from shared.connector.core_client import BatchPlan, CoreClient
from shared.connector.scan import FullScan, ScanProgress
from shared.connector.settings import ConnectorSettings
from shared.connector.submit import Submitter, scan_requests
from shared.errors import DsxError, PermanentError

log = logging.getLogger(__name__)

_KEEP_FINISHED_SCANS = 50
_PLAN_TTL_S = 300.0
_UNREGISTER_TIMEOUT_S = 3.0
_WATCH_STOP_GRACE_S = 2.0
_NUDGE_MIN_INTERVAL_S = 5.0
_MAX_LATE_SUBMISSIONS = 64
#: a watcher started again after a failure counts as running once it has run this long without failing
_WATCH_HEALTHY_S = 5.0


class CoreState(ConnectorState):
    """The connector's state kept in the core (namespace = the connector's name)."""

    def __init__(self, client: CoreClient, connector: Connector) -> None:
        super().__init__()
        self._client, self._connector = client, connector

    async def get(self, key: str) -> str | None:
        s = self._connector.settings
        return await self._client.get_state(s.uuid, s.name, key)

    async def put(self, key: str, value: str) -> None:
        s = self._connector.settings
        await self._client.put_state(s.uuid, s.name, key, value)


#: the settings that decide what a full scan lists and where its items are read
_SCAN_DEFINING = frozenset({"asset", "filter"})


class ScanRunning(PermanentError):
    """A change refused while a full scan runs (HTTP 409)."""

    def __init__(self, message: str) -> None:
        super().__init__(message, status_code=409)


class ConnectorRuntime:
    """Owns the control-plane client and every background task of one connector process."""

    def __init__(
        self,
        connector: Connector,
        *,
        auth: httpx.Auth | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self.connector = connector
        self._auth = auth
        self._transport = transport
        self.client: CoreClient | None = None
        self.submitter: Submitter | None = None
        self.registered = False
        self.last_registration_error: str | None = None
        #: why the watcher failed, until it runs again (it yields): ``GET /`` shows it not running
        self.watch_error: str | None = None
        self._watch_starts = self._watch_failed_start = 0
        self.scans: OrderedDict[str, ScanProgress] = OrderedDict()
        self._tasks: set[asyncio.Task[Any]] = set()
        self._late: set[asyncio.Task[Any]] = set()  # webhook items still being submitted after a 503
        self._heartbeat_task: asyncio.Task[None] | None = None
        self._watch_task: asyncio.Task[None] | None = None
        self._watch_stop: anyio.Event | None = None
        self._plan: tuple[float, BatchPlan] | None = None
        self._wake = asyncio.Event()
        self._registered = asyncio.Event()
        self._last_nudge = 0.0

    @property
    def settings(self) -> ConnectorSettings:
        return self.connector.settings

    @property
    def watching(self) -> bool:
        """The watcher runs: started, not ended, and not failing (``watch_error``)."""
        return self._watch_task is not None and not self._watch_task.done() and self.watch_error is None

    # ---- lifecycle -------------------------------------------------------------------------

    async def start(self) -> None:
        """Open the control-plane client, start the heartbeat and (``MONITOR``) the watcher."""
        self.client = CoreClient.from_settings(self.settings, auth=self._auth, transport=self._transport)
        self.submitter = Submitter(self.client, lambda: self.settings, on_unknown=self.nudge_registration)
        self.connector.state = CoreState(self.client, self.connector)
        self._heartbeat_task = asyncio.create_task(self._heartbeat(), name="connector-heartbeat")
        self._start_watch()
        log.info(
            "connector started",
            extra={
                "connector": self.settings.name,
                "uuid": self.settings.uuid,
                "url": self.settings.connector_url,
                "core": self.settings.dsx_connect_url,
                "monitor": self.watching,
            },
        )

    async def stop(self) -> None:
        """Stop every task, unregister (best effort) and close clients."""
        await self._stop_watch()
        for task in [*self._tasks, self._heartbeat_task]:
            if task is not None:
                task.cancel()
        pending = [t for t in [*self._tasks, self._heartbeat_task] if t is not None]
        await asyncio.gather(*pending, return_exceptions=True)
        interrupted = [progress for progress in self.scans.values() if progress.active]
        for progress in interrupted:
            progress.state, progress.error = "failed", "the connector shut down during enumeration"
        if self.client is not None:
            for progress in interrupted:  # the job fails now, naming why, not after the stall sweep
                try:
                    with anyio.fail_after(_UNREGISTER_TIMEOUT_S):
                        await self.client.enqueue_done(
                            progress.job_id, progress.submitted, error=progress.error
                        )
                    log.warning(
                        "full scan interrupted by shutdown; its job fails with what was submitted",
                        extra={"job_id": progress.job_id, "submitted": progress.submitted},
                    )
                except (DsxError, TimeoutError) as exc:
                    log.warning(
                        "full scan interrupted by shutdown; enqueue_done not reported",
                        extra={"job_id": progress.job_id, "submitted": progress.submitted, "error": str(exc)},
                    )
            try:
                with anyio.fail_after(_UNREGISTER_TIMEOUT_S):
                    await self.client.unregister(self.settings.uuid)
                log.info("unregistered from dsx-connect")
            except (DsxError, TimeoutError) as exc:
                log.info("unregister skipped", extra={"error": str(exc)})
            await self.client.aclose()
        await self.connector.aclose()

    # ---- registration ----------------------------------------------------------------------

    async def register_once(self) -> bool:
        """Register (or refresh) with the core now; False and logged when it fails."""
        if self.client is None:
            return False
        try:
            status_code = await self.client.register(self.connector.instance())
        except DsxError as exc:
            if self.registered or self.last_registration_error is None:
                log.warning("registration with dsx-connect failed; will retry", extra={"error": exc.message})
            self.registered, self.last_registration_error = False, exc.message
            return False
        if not self.registered:
            log.info("registered with dsx-connect", extra={"status_code": status_code})
        self.registered, self.last_registration_error = True, None
        self._registered.set()
        return True

    def nudge_registration(self) -> None:
        """Re-register now rather than at the next heartbeat (the core signed with a key we lack:
        a rotated pair whose registration answer was missed). At most once per few seconds."""
        now = time.monotonic()
        if now - self._last_nudge >= _NUDGE_MIN_INTERVAL_S:
            self._last_nudge = now
            self._wake.set()

    async def _heartbeat(self) -> None:
        backoff = 0.5
        while True:
            interval = self.settings.heartbeat_interval_s
            if await self.register_once():
                backoff = 0.5
                delay = interval
            else:
                delay = backoff
                backoff = min(backoff * 2, interval, 30.0)
            with anyio.move_on_after(delay):
                await self._wake.wait()
            self._wake.clear()

    # ---- configuration ---------------------------------------------------------------------

    async def reconfigure(self, changes: dict[str, Any]) -> ConnectorSettings:
        """Apply a live settings change (``ValidationError`` / ``ValueError`` refuse it), then re-register.

        What a full scan lists and reads (``asset``, ``filter``) is not changed under a running one
        (:class:`ScanRunning`): its items already queued would be read, and acted on, in the new
        asset (another file under the same name)."""
        running = sorted(job for job, progress in self.scans.items() if progress.active)
        if running and changes.keys() & _SCAN_DEFINING:
            raise ScanRunning(
                f"{', '.join(sorted(changes.keys() & _SCAN_DEFINING))} cannot change while full scan "
                f"{', '.join(running)} runs: cancel it or wait for it to finish"
            )
        new = self.settings.updated(changes)
        self.connector.configure(new)
        log.info("configuration updated", extra={"changed": sorted(changes)})
        if self._watch_task is not None:  # running, or failing and about to start again
            await self._stop_watch()
            self._start_watch()
        await self.register_once()
        return self.settings

    # ---- full scans ------------------------------------------------------------------------

    def start_full_scan(self, job_id: str, limit: int | None) -> tuple[ScanProgress, bool]:
        """Start a full scan in the background; ``(progress, False)`` if that job already runs."""
        existing = self.scans.get(job_id)
        if existing is not None and existing.active:
            return existing, False
        if self.client is None or self.submitter is None:
            raise RuntimeError("connector runtime not started")
        progress = ScanProgress(job_id=job_id, limit=limit)
        self.scans[job_id] = progress
        self.scans.move_to_end(job_id)
        finished = [k for k, p in self.scans.items() if not p.active]
        for key in finished[: max(0, len(finished) - _KEEP_FINISHED_SCANS)]:
            del self.scans[key]
        self._spawn(
            FullScan(self.connector, self.client, self.submitter, progress).run(), f"full-scan-{job_id}"
        )
        return progress, True

    def _spawn(self, coro: Any, name: str) -> asyncio.Task[Any]:
        task = asyncio.create_task(coro, name=name)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    # ---- change events ---------------------------------------------------------------------

    async def submit_items(self, items: list[Item], *, retry_for_s: float | None = None) -> int:
        """Submit changed items (watcher, webhook) without a job: the core adds them to our monitor job.

        ``RetryableError`` once transient failures outlast ``retry_for_s`` (default
        ``SUBMIT_RETRY_MAX_S``); items the core refuses one by one are logged and skipped.
        """
        if not items or self.client is None or self.submitter is None:
            return 0
        plan = await self._batch_plan()
        instance = self.connector.instance().model_dump(mode="json")
        accepted = 0
        for start in range(0, len(items), plan.size):
            requests = scan_requests(
                items[start : start + plan.size],
                connector=instance,
                connector_url=self.settings.connector_url,
                job_id=None,
            )
            accepted += await self.submitter.submit(requests, plan, retry_for_s=retry_for_s)
        return accepted

    def submit_later(self, items: list[Item], after_submit: Callable[[], Awaitable[None]] | None) -> bool:
        """Go on submitting a webhook's ``items`` in the background, for ``SUBMIT_RETRY_MAX_S``, after
        its sender was answered 503; ``after_submit`` (a cursor, an SNS MessageId) runs once they are
        in. The storage's own redelivery may give up sooner (SNS: 3 tries in a minute by default),
        so this keeps what it would lose; a redelivery that comes first is deduplicated by the core
        (change events naming their version) or, once this succeeds, by ``after_submit``. At most
        ``_MAX_LATE_SUBMISSIONS`` at a time: beyond, only the redelivery remains. False if not kept."""
        if not items or len(self._late) >= _MAX_LATE_SUBMISSIONS:
            return False
        task = self._spawn(self._submit_late(items, after_submit), "webhook-resubmit")
        self._late.add(task)
        task.add_done_callback(self._late.discard)
        return True

    async def _submit_late(
        self, items: list[Item], after_submit: Callable[[], Awaitable[None]] | None
    ) -> None:
        try:
            accepted = await self.submit_items(items)
        except DsxError as exc:
            log.error(
                "webhook items not submitted; the storage's redelivery is their last chance",
                extra={"count": len(items), "error": exc.message},
            )
            return
        log.info("webhook items submitted late", extra={"count": len(items), "accepted": accepted})
        if after_submit is not None:
            try:
                await after_submit()
            except DsxError as exc:  # the items are in: a cursor left behind only reads them again
                log.warning("webhook items submitted, their cursor not moved", extra={"error": exc.message})

    async def _batch_plan(self) -> BatchPlan:
        now = time.monotonic()
        if self._plan is None or now - self._plan[0] > _PLAN_TTL_S:
            assert self.client is not None
            self._plan = (now, await self.client.batch_plan(self.settings.scan_batch_size))
        return self._plan[1]

    def _start_watch(self) -> None:
        if not (self.settings.monitor and self.connector.can_watch):
            return
        self._watch_stop = anyio.Event()
        self._watch_task = asyncio.create_task(self._watch(self._watch_stop), name="connector-watch")

    async def _stop_watch(self) -> None:
        task, stop = self._watch_task, self._watch_stop
        self._watch_task = self._watch_stop = None
        self.watch_error = None
        if task is None or stop is None:
            return
        stop.set()
        try:
            with anyio.fail_after(_WATCH_STOP_GRACE_S):
                await asyncio.shield(task)
        except TimeoutError:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
        except Exception:
            log.debug("watch task ended with an error", exc_info=True)

    async def _watch(self, stop: anyio.Event) -> None:
        """Run the connector's watcher, starting it again when it fails, after a doubling delay (1 s,
        at most a minute). Meanwhile ``watch_error`` says why and ``watching`` is false, until the
        watcher yields (an empty list says "running again") or has run ``_WATCH_HEALTHY_S`` without
        failing. What changed in between is the watcher's to catch up on when it runs again (the
        filesystem connector walks for the files changed since it failed)."""
        backoff = 1.0
        if self.connector.watch_needs_core:  # its cursor lives in the core: wait for our key first
            await self._registered.wait()
        log.info("monitoring the asset for changes", extra={"asset": self.settings.asset})
        while not stop.is_set():
            self._watch_starts += 1
            if self.watch_error is not None:
                asyncio.get_running_loop().call_later(
                    _WATCH_HEALTHY_S, self._watch_healthy, self._watch_starts
                )
            try:
                # closed at once when we stop early, so a watcher's "seen" mark after its yield never runs
                async with aclosing(self.connector.watch(stop)) as changes:
                    async for items in changes:
                        backoff, self.watch_error = 1.0, None
                        if items and not await self._submit_changes(items, stop):
                            return
                return
            except Exception as exc:
                self.watch_error = str(exc) or type(exc).__name__
                self._watch_failed_start = self._watch_starts
                log.error(
                    "watcher failed; restarting",
                    extra={"error": self.watch_error, "restart_in_s": backoff},
                    exc_info=True,
                )
                with anyio.move_on_after(backoff):  # a stop during the wait ends it at once
                    await stop.wait()
                backoff = min(backoff * 2, 60.0)

    def _watch_healthy(self, start: int) -> None:
        """The watcher's ``start``-th run has lasted ``_WATCH_HEALTHY_S``: running, unless it failed."""
        if self._watch_starts == start and self._watch_failed_start != start and self._watch_task is not None:
            self.watch_error = None

    async def _submit_changes(self, items: list[Item], stop: anyio.Event) -> bool:
        """Submit ``items`` until the core takes them; False if told to stop first.

        The watcher is held at its ``yield`` meanwhile: a watcher that keeps a cursor (Graph's
        delta link) moves it only when resumed, so changes the core never received are read again
        after a restart instead of being marked seen.
        """
        delay = 1.0
        while True:
            try:
                accepted = await self.submit_items(items)
            except DsxError as exc:
                log.error(
                    "changed items could not be submitted; trying again",
                    extra={"count": len(items), "error": exc.message, "retry_in_s": delay},
                )
                with anyio.move_on_after(delay):
                    await stop.wait()
                if stop.is_set():
                    return False
                delay = min(delay * 2, 60.0)
                continue
            log.info("changed items submitted", extra={"count": len(items), "accepted": accepted})
            return True
