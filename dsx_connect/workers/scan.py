"""Scan step: stream each item of a batch from its connector into the scanner, concurrently.

A failing item never fails its batch-mates: transient failures are retried alone with backoff,
permanent ones (and those out of retries) go on as failed results, so nothing is silently dropped.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import Counter, defaultdict
from collections.abc import Callable
from typing import Literal

from dsx_connect.cache.step import scan_cache
from dsx_connect.metrics.instruments import CONNECTOR_READ_DURATION, SCAN_DURATION
from dsx_connect.state.dead_letters import DeadLetter
from dsx_connect.workers import aio
from dsx_connect.workers.context import WorkerContext
from dsx_connect.workers.hot_path import batchable, read_items, scan_bytes, scan_item
from dsx_connect.workers.outcome import ConnectorRef, ItemOutcome
from shared.errors import DsxError, RetryableError, ScannerUnavailable
from shared.models import DsxaVerdict, EventError, ScanTask

log = logging.getLogger(__name__)

PAUSED_RECHECK_S = 2.0


class Dispatch:
    """Where the outcomes of a step go next (tasks.py binds these to Celery)."""

    def __init__(
        self,
        rescan: Callable[[list[ScanTask], float], None],
        act: Callable[[list[ItemOutcome]], None],
        store: Callable[[list[ItemOutcome]], None],
        notify: Callable[[list[ScanTask]], None] = lambda tasks: None,
    ) -> None:
        self.rescan = rescan
        self.act = act
        self.store = store
        self.notify = notify  # publishes the stored results of these items again (no new result)


DEFERRED = object()  # an item the task did not start before its deadline: handed back, no attempt spent


def run_scan_batch(ctx: WorkerContext, tasks: list[ScanTask], dispatch: Dispatch) -> None:
    begun = time.monotonic()
    finished, superseded = ctx.jobs.triage(tasks)
    if superseded:  # the lease sweep sent these items again since: only the newest copy is scanned
        log.info("%d of %d items are older copies of items sent again: dropped", len(superseded), len(tasks))
    if finished:  # a copy sent again (resubmitted, redelivered) after the item was stored
        log.info("%d of %d items already finished are not scanned again", len(finished), len(tasks))
        # published again, as the result step publishes a duplicate: SSE readers key on the id
        dispatch.notify([task for task in tasks if task.id in finished])
    if finished or superseded:
        tasks = [task for task in tasks if task.id not in finished and task.id not in superseded]
    ctx.jobs.renew_leases(tasks, ctx.settings.jobs.redispatch_after_s)  # held by a worker: not lost
    live = _hold_paused_and_drop_cancelled(ctx, tasks, dispatch)
    outcomes: list[ItemOutcome] = []
    to_scan: list[tuple[ScanTask, ConnectorRef]] = []
    refs: dict[str, ConnectorRef | None] = {}  # a batch is almost always one connector's
    for task in live:
        if task.connector_uuid not in refs:
            connector = ctx.connector(task.connector_uuid)
            refs[task.connector_uuid] = ConnectorRef.of(connector) if connector is not None else None
        found = refs[task.connector_uuid]
        if found is None:
            ref = ConnectorRef(uuid=task.connector_uuid, name=task.connector_name)
            error = EventError(kind="permanent", message=f"connector {task.connector_uuid} is not registered")
            outcomes.append(ItemOutcome(task=task, connector=ref, error=error))
        else:
            to_scan.append((task, found))

    cache = scan_cache(ctx) if to_scan else None
    scanned_under = None  # the scanner's identity before these items are scanned
    if cache is not None:  # unchanged items: neither read nor scanned (dsx_connect/cache)
        hits, to_scan = cache.split(to_scan)
        outcomes.extend(hits)
        scanned_under = cache.identity.current() if to_scan else None

    breaker = ctx.breaker.state()
    probing = breaker.state == "half_open" and bool(to_scan) and ctx.breaker.take_probe()
    if to_scan and (breaker.is_open or (breaker.state == "half_open" and not probing)):
        # The scanner is down (or another worker is probing it): wait for it, keep the retries.
        delay = max(breaker.open_until - time.time(), 0.0) + ctx.backoff(1) / 2
        dispatch.rescan([task for task, _ in to_scan], delay)
        log.info("scanner circuit %s: %d items wait %.1fs", breaker.state, len(to_scan), delay)
        to_scan = []

    started = time.monotonic()
    deadline = begun + ctx.settings.workers.start_deadline_s
    versions: dict[str, str] = {}  # request id -> the item version the connector answered
    results = aio.run(_scan_all(ctx, to_scan, deadline, versions)) if to_scan else []
    reopen_at = _update_breaker(ctx, results, probing=probing)
    retry: dict[float, list[ScanTask]] = defaultdict(list)
    deferred = [task for (task, _), result in zip(to_scan, results, strict=True) if result is DEFERRED]
    if deferred:  # the task's time is up: the rest go back to the queue as a new task, at once
        retry[0.0].extend(deferred)
        log.info("task deadline: %d items not started are handed back", len(deferred))
    dead: list[DeadLetter] = []
    max_retries = ctx.settings.workers.max_retries
    for (task, ref), result in zip(to_scan, results, strict=True):
        if isinstance(result, ScannerUnavailable) and reopen_at:
            retry[round(max(reopen_at - time.time(), 0.0), 1)].append(task)  # not counted as an attempt
        elif isinstance(result, RetryableError) and task.attempt < max_retries:
            nxt = task.model_copy(update={"attempt": task.attempt + 1})
            retry[round(ctx.backoff(nxt.attempt), 1)].append(nxt)
            log.warning(
                "scan of %s will be retried: %s",
                task.location,
                result.message,
                extra={"request_id": task.id, "attempt": nxt.attempt},
            )
        elif isinstance(result, DsxError):
            kind: Literal["exhausted", "permanent"] = (
                "exhausted" if isinstance(result, RetryableError) else "permanent"
            )
            message = (
                result.message
                if kind == "permanent"
                else f"gave up after {task.attempt + 1} attempts: {result.message}"
            )
            log.warning("scan of %s failed: %s", task.location, message, extra={"request_id": task.id})
            outcomes.append(
                ItemOutcome(task=task, connector=ref, error=EventError(kind=kind, message=message))
            )
            if kind == "exhausted":
                dead.append(
                    DeadLetter(
                        id=task.id, stage="scan", reason=message, attempts=task.attempt + 1, job_id=task.job_id,
                        connector_uuid=task.connector_uuid, location=task.location,
                        payload=task.model_copy(update={"attempt": 0}).model_dump(mode="json"),
                    )
                )  # fmt: skip
        elif isinstance(result, DsxaVerdict):
            # the scanner's echo of our own X-Custom-Metadata: no later step reads it, and it was a
            # sixth of every outcome message
            result.x_custom_metadata = None
            outcomes.append(
                ItemOutcome(task=task, connector=ref, verdict=result, item_version=versions.get(task.id))
            )

    ctx.dead_letters.add_many(dead)
    if cache is not None:
        cache.remember(outcomes, scanned_under)
    for delay, items in retry.items():
        dispatch.rescan(items, delay)
    verdict_counts = Counter(o.verdict.verdict if o.verdict else "failed" for o in outcomes)
    log.info(
        "scanned %d of %d items in %.3fs: %s; %d to retry",
        len(outcomes), len(tasks), time.monotonic() - started,
        ", ".join(f"{n} {v}" for v, n in verdict_counts.most_common()) or "none",
        sum(len(v) for v in retry.values()),
    )  # fmt: skip
    verdicts = ctx.settings.workers.action_verdicts
    needs_action = [o for o in outcomes if o.needs_action(verdicts)]
    done = [o for o in outcomes if not o.needs_action(verdicts)]
    if needs_action:
        dispatch.act(needs_action)
    if done:
        dispatch.store(done)


def _update_breaker(ctx: WorkerContext, results: list[object], probing: bool) -> float:
    """Feed the batch's outcome to the scanner's breaker; returns when it may close if it is open."""
    if any(isinstance(r, DsxaVerdict) for r in results):
        ctx.breaker.record_success()
        return 0.0
    failures = [r for r in results if isinstance(r, ScannerUnavailable)]
    if not failures:
        if probing:  # the probe never reached the scanner: let the next batch probe
            ctx.breaker.release_probe()
        return 0.0
    reopen_at = ctx.breaker.record_failure(failures[0].message, probing=probing)
    if reopen_at:
        log.warning("scanner circuit opened until %.0f: %s", reopen_at, failures[0].message)
    return reopen_at


def _hold_paused_and_drop_cancelled(
    ctx: WorkerContext, tasks: list[ScanTask], dispatch: Dispatch
) -> list[ScanTask]:
    by_job: dict[str, list[ScanTask]] = defaultdict(list)
    for task in tasks:
        by_job[task.job_id].append(task)
    live: list[ScanTask] = []
    for job_id, items in by_job.items():
        paused, cancelled = ctx.jobs.flags(job_id)
        ids = [t.id for t in items]
        if cancelled:
            ctx.dead_letters.end_requeues(ids)
            added = ctx.jobs.add_skipped(
                job_id,
                ids,
                ctx.settings.results_db.request_state_ttl_s,
                [t.job_item_id for t in items],
            )
            log.info(
                "skipped %d items of cancelled job (%d new)", len(items), added, extra={"job_id": job_id}
            )
        elif paused:
            dispatch.rescan(items, PAUSED_RECHECK_S)  # held, not dropped: they come back after resume
            ctx.dead_letters.hold_requeues(ids, time.time() + ctx.settings.jobs.redispatch_after_s)
        else:
            live.extend(items)
    return live


async def _scan_all(
    ctx: WorkerContext,
    items: list[tuple[ScanTask, ConnectorRef]],
    deadline: float,
    versions: dict[str, str] | None = None,
) -> list[object]:
    """Each item's verdict or error, in order (:data:`DEFERRED` for those not started by ``deadline``,
    a ``time.monotonic()`` value).

    Each item (its read and scan) is bounded by ``item_deadline_s``; none starts after ``deadline``,
    and nothing runs past ``deadline + item_deadline_s``, so a task ends within ``start_deadline_s +
    item_deadline_s``, below its time limit and the visibility timeout, however large its batch and
    slow its files. Small items are read from their connector in groups (``read_files``), the rest one by one
    (``read_file``, streamed). ``scan_concurrency`` bounds the items in flight to the scanner;
    groups are read a little ahead of the scans, so a process holds at most a few groups in memory.
    """
    pool = aio.pool(ctx.settings.scanner.client)
    workers = ctx.settings.workers
    gate = asyncio.Semaphore(workers.scan_concurrency)
    group_size = workers.read_batch_size
    group_gate = asyncio.Semaphore(max(2, workers.scan_concurrency // group_size + 1))
    results: list[object] = [None] * len(items)
    item_deadline = workers.item_deadline_s
    overdue = RetryableError(f"item deadline: not read and scanned within {item_deadline:g} s")
    end = deadline + item_deadline  # nothing runs past this: items read in a group scan within it too

    def budget() -> float:
        return min(item_deadline, end - time.monotonic())

    def failed(task: ScanTask, ref: ConnectorRef, exc: BaseException) -> DsxError:
        if isinstance(exc, DsxError):
            if exc.status_code == 401:
                ctx.signature_refused(ref.uuid)
            return exc
        log.error("unexpected error scanning %s", task.location, exc_info=exc, extra={"request_id": task.id})
        return RetryableError(f"internal error: {exc!r}")

    async def one(i: int, data: bytes | None = None) -> None:
        task, ref = items[i]
        async with gate:
            if data is None and time.monotonic() > deadline:
                results[i] = DEFERRED
                return
            try:
                async with asyncio.timeout(budget()):
                    begun = time.monotonic()
                    if data is None:
                        results[i] = await scan_item(
                            pool, task, ref, ctx.scan_config, ctx.signer(ref.uuid), versions
                        )
                        streamed.append(time.monotonic() - begun)
                    else:
                        results[i] = await scan_bytes(pool, task, ref, data, ctx.scan_config)
                        scanned.append(time.monotonic() - begun)
            except TimeoutError:
                results[i] = overdue
            except Exception as exc:  # a bug must not lose the batch's other items
                results[i] = failed(task, ref, exc)

    async def group(indices: list[int]) -> None:
        task, ref = items[indices[0]]
        async with group_gate:
            if time.monotonic() > deadline:
                for i in indices:
                    results[i] = DEFERRED
                return
            try:
                async with asyncio.timeout(budget()):
                    begun = time.monotonic()
                    read = await read_items(
                        pool,
                        [items[i][0] for i in indices],
                        ref,
                        ctx.scan_config,
                        ctx.signer(ref.uuid),
                        versions,
                    )
                    reads.append(time.monotonic() - begun)
            except TimeoutError:
                for i in indices:
                    results[i] = overdue
                return
            except Exception as exc:  # the call failed: every item of it fails the same way
                error = failed(task, ref, exc)
                for i in indices:
                    results[i] = error
                return
            if read is None:  # no read_files on this connector
                await asyncio.gather(*(one(i) for i in indices))
                return
            pending = []
            for i, got in zip(indices, read, strict=True):
                if isinstance(got, DsxError):
                    results[i] = failed(items[i][0], ref, got)
                else:
                    pending.append(one(i, got))
            await asyncio.gather(*pending)

    # durations of the items that got a verdict and of the read_files calls that answered,
    # observed once the batch is done (docs/metrics.md)
    scanned: list[float] = []
    streamed: list[float] = []
    reads: list[float] = []
    groups, singles = read_groups(items, group_size)
    await asyncio.gather(*(group(chunk) for chunk in groups), *(one(i) for i in singles))
    _observe(scanned, streamed, reads)
    return results


def read_groups(
    items: list[tuple[ScanTask, ConnectorRef]], group_size: int
) -> tuple[list[list[int]], list[int]]:
    """The indices of ``items`` read in groups (``read_files``), and of those read one by one.

    A group is one connector's: the same uuid, not only the same URL, since a group is signed with
    its first item's connector's key pair (two registrations may share a URL: a connector that
    re-enrolled under a new uuid, items of both in one batch of requeued dead letters).
    """
    singles: list[int] = []
    groups: dict[tuple[str, str], list[list[int]]] = defaultdict(list)
    for i, (task, ref) in enumerate(items):
        if group_size > 1 and batchable(task, ref):
            chunks = groups[(ref.uuid, ref.url)]
            if not chunks or len(chunks[-1]) >= group_size:
                chunks.append([])
            chunks[-1].append(i)
        else:
            singles.append(i)
    return [chunk for chunks in groups.values() for chunk in chunks], singles


def _observe(scanned: list[float], streamed: list[float], reads: list[float]) -> None:
    for histogram, values in (
        (SCAN_DURATION.labels("read_files"), scanned),
        (SCAN_DURATION.labels("streamed"), streamed),
        (CONNECTOR_READ_DURATION, reads),
    ):
        for value in values:
            histogram.observe(value)
