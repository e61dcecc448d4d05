"""Accepting scan requests: validate against registered connectors, record, enqueue in batches."""

from __future__ import annotations

import hashlib
import re
import time
import uuid
from collections import Counter
from collections.abc import Callable
from typing import Any

import redis

from dsx_connect.queues import SCAN_REQUEST_QUEUE
from dsx_connect.redis_client import replicated
from dsx_connect.settings import Settings
from dsx_connect.state.connectors import ConnectorRegistry
from dsx_connect.state.jobs import ItemIdCollision, JobStore
from dsx_connect.state.monitor_jobs import ID_PREFIX as MONITOR_ID_PREFIX
from dsx_connect.state.monitor_jobs import KIND as MONITOR
from dsx_connect.state.monitor_jobs import MonitorJobs
from dsx_connect.state.requests import (
    capacity_counts,
    job_owners,
    jobs_of_requests,
    touch_accept,
    unfinished_items,
)
from shared.models import RegisteredConnector, ScanRequest, ScanTask, utcnow_iso

_ITEM_NAMESPACE = uuid.UUID("6f1c3a52-8d0e-4b6a-9d63-3c1f0e7a9b21")
_ITEM_NS_BYTES = _ITEM_NAMESPACE.bytes
#: the namespace of the ids derived from length-prefixed parts (``scoped_request_id``)
_FRAMED_NS_BYTES = uuid.UUID("0b7e5d6a-2c41-4f8e-9a3b-5e1d7c2f4a86").bytes

#: enqueues scan tasks (each its JSON text, or a dict), batched as configured
Publish = Callable[[list[str] | list[dict[str, Any]]], None]


class UnknownConnectors(LookupError):
    def __init__(self, uuids: list[str]) -> None:
        super().__init__(f"connector not registered: {', '.join(sorted(uuids))}")
        self.uuids = uuids


class MissingConnector(ValueError):
    pass


#: what a ``scan_job_id`` may look like: it becomes part of Redis keys, so no ``:`` (a ``X:pending``
#: would write into job X's pending hash) and a bounded charset
JOB_ID_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")


class InvalidJobId(ValueError):
    """A ``scan_job_id`` outside :data:`JOB_ID_PATTERN` (HTTP 422)."""


class ReservedJobId(ValueError):
    """A ``scan_job_id`` naming a monitor job (``monitor-...``, HTTP 400): those ids are the core's.
    A connector could otherwise create, ahead of time, the job another connector's monitor job would
    roll over into, and have its own items counted and reported in that connector's job."""


class ForeignJob(PermissionError):
    """A scan request names a job of another connector (HTTP 403)."""


def check_job_ids(requests: list[ScanRequest]) -> None:
    """Refuse job ids that could address another key (``:``) or are not plain tokens, monitor job
    ids (:class:`ReservedJobId`), and one ``job_item_id`` naming two items of a job in one batch
    (they would get one request id: the second would never be scanned)."""
    items: dict[tuple[str, str], str] = {}
    for req in requests:
        if req.scan_job_id is None:
            continue
        if not JOB_ID_PATTERN.fullmatch(req.scan_job_id):  # (match: "$" also matches before a final "\n")
            raise InvalidJobId(
                f"scan_job_id {req.scan_job_id[:64]!r} is not valid: 1-128 letters, digits, '.', '_' or '-'"
            )
        if req.scan_job_id.startswith(MONITOR_ID_PREFIX):
            raise ReservedJobId(
                f"scan_job_id {req.scan_job_id[:64]!r} is refused: ids starting with {MONITOR_ID_PREFIX!r} "
                "name the core's monitor jobs (leave scan_job_id out: a change event joins its connector's)"
            )
        if req.job_item_id:
            first = items.setdefault((req.scan_job_id, req.job_item_id), req.location)
            if first != req.location:
                raise InvalidJobId(
                    f"job_item_id {req.job_item_id[:64]!r} of job {req.scan_job_id!r} names two items "
                    f"({first[:200]!r} and {req.location[:200]!r}): each item needs its own"
                )


class Backpressure(RuntimeError):
    """Too much is in flight: the caller should retry after ``retry_after_s`` (HTTP 429)."""

    def __init__(self, message: str, retry_after_s: int = 2) -> None:
        super().__init__(message)
        self.retry_after_s = retry_after_s


def check_capacity(
    client: redis.Redis,
    settings: Settings,
    per_job: dict[str, int],
    owners: dict[str, set[str]] | None = None,
) -> None:
    """Refuse work past the bounds: the scan queue's depth, and the items in flight per job; and, in
    the same round trip, requests naming a job of another connector (``owners``: job -> the
    connectors of the requests naming it; jobs not created yet have no owner)."""
    owners = owners or {}
    for job_id, connectors in owners.items():
        if len(connectors) > 1:
            raise ForeignJob(f"job {job_id} is named by requests of different connectors")
    depth, counts = capacity_counts(client, SCAN_REQUEST_QUEUE, per_job)
    for job_id, (_, _, _, owner) in zip(per_job, counts, strict=True):
        if owner is not None and job_id in owners and owner not in owners[job_id]:
            raise ForeignJob(f"job {job_id} belongs to another connector")
    if depth >= settings.workers.max_queued_batches:
        raise Backpressure(f"the scan queue is full ({depth} batches waiting); retry later")
    # Every accepted, unfinished item, wherever it is (queued, waiting on a retry, an open breaker
    # or a pause, held by a worker): the pending hashes of the active jobs.
    unfinished = _unfinished(client)
    adding = sum(per_job.values())
    if unfinished + adding > settings.jobs.max_in_flight_total and unfinished > 0:
        raise Backpressure(
            f"{unfinished} items are accepted and unfinished (bound {settings.jobs.max_in_flight_total}); retry later"
        )
    for (job_id, adding), (accepted, processed, skipped, _) in zip(per_job.items(), counts, strict=True):
        in_flight = int(accepted or 0) - int(processed or 0) - int(skipped or 0)
        if in_flight + adding > settings.jobs.max_in_flight and in_flight > 0:
            raise Backpressure(
                f"job {job_id} has {in_flight} items in flight (bound {settings.jobs.max_in_flight}); retry later"
            )


_UNFINISHED_CACHE_S = 1.0
_unfinished_seen: dict[int, tuple[float, int]] = {}  # per client: (when, count)


def _unfinished(client: redis.Redis) -> int:
    """Pending items of every active job; read at most once a second per process (one HLEN per
    active job: with many small jobs of change events, per request it would cost too much)."""
    now = time.monotonic()
    seen = _unfinished_seen.get(id(client))
    if seen is not None and now - seen[0] < _UNFINISHED_CACHE_S:
        return seen[1]
    count = unfinished_items(client)
    _unfinished_seen[id(client)] = (now, count)
    return count


def _uuid5_hex(namespace: bytes, name: str) -> str:
    """``uuid.uuid5(namespace, name).hex``, computed directly: a third of the cost per item."""
    digest = bytearray(hashlib.sha1(namespace + name.encode()).digest()[:16])
    digest[6] = (digest[6] & 0x0F) | 0x50  # version 5
    digest[8] = (digest[8] & 0x3F) | 0x80  # RFC 4122 variant
    return digest.hex()


def framed(parts: tuple[str, ...]) -> str:
    """``parts`` as one string each of them can be read back from: every part prefixed by its length
    (``3:abc0:``). Joined with a separator instead, a ``:`` inside one part (a connector uuid, a
    location) moved the boundary: ``B:evil`` + ``x`` and ``B`` + ``evil:x`` read alike."""
    return "".join(f"{len(part)}:{part}" for part in parts)


def scoped_request_id(*parts: str) -> str:
    """The stable request id of ``parts`` (a scope such as ``change``, then what names the item):
    the uuid5 of their :func:`framed` form in a namespace of its own, so it never equals an id of
    :func:`request_id_for`'s plain form either."""
    return _uuid5_hex(_FRAMED_NS_BYTES, framed(parts))


def request_id_for(job_id: str, job_item_id: str | None) -> str:
    """A new id, or a stable one when the connector names the item, so a resubmission is the same request.

    A job id of the intake holds no ``:`` (:data:`JOB_ID_PATTERN`): ``<job>:<item>`` splits at its
    first ``:`` only one way, so those ids stay what they were (a full scan running across an upgrade
    keeps its ids). Any other scope (one with a ``:``) is framed (:func:`scoped_request_id`)."""
    if job_item_id:
        if ":" in job_id:
            return scoped_request_id("item", job_id, job_item_id)
        return _uuid5_hex(_ITEM_NS_BYTES, f"{job_id}:{job_item_id}")
    return uuid.uuid4().hex


def change_event_id(connector_uuid: str, req: ScanRequest) -> str | None:
    """A stable id for a request outside any job (a change event) that names its item's version or
    its own item id: the same event submitted again (a lost answer, a retried webhook) is the same
    request, so it gets one result. None when the request names neither (each is a new request).

    The connector's uuid is one framed part of the name: two connectors never share an id, whatever
    their uuids and locations hold (``B:evil`` + ``x`` is not ``B`` + ``evil:x``)."""
    if not (req.item_version or req.job_item_id):
        return None
    return scoped_request_id(
        "change", connector_uuid, req.location, req.item_version or "", req.job_item_id or ""
    )


def accept(
    requests: list[ScanRequest],
    *,
    registry: ConnectorRegistry,
    jobs: JobStore,
    client: redis.Redis,
    settings: Settings,
    publish: Publish,
    serve_cached: Callable[[list[ScanTask], dict[str, RegisteredConnector]], list[ScanTask]] | None = None,
) -> list[ScanTask]:
    """Record and enqueue ``requests``; all or nothing on validation (unknown connector rejects the batch).

    ``serve_cached`` (``dsx_connect.cache.intake``) accepts and stores the items the scan cache can
    serve and returns those still to scan; those are recorded as accepted and published as scan tasks.
    """
    if any(r.connector is None for r in requests):
        raise MissingConnector("every scan request needs `connector` with the registered `uuid`")
    check_job_ids(requests)
    wanted = {r.connector.uuid for r in requests if r.connector}
    connectors: dict[str, RegisteredConnector] = {}
    for connector_uuid in wanted:
        record = registry.get(connector_uuid)
        if record is not None:
            connectors[connector_uuid] = record
    if missing := sorted(wanted - connectors.keys()):
        raise UnknownConnectors(missing)

    tasks: list[ScanTask] = []
    # requests without a job (change events) join their connector's rolling monitor job; one naming
    # its version keeps its id across resubmits, and a resubmit stays in the monitor job that accepted
    # it (counted, pending and completed there; the current one would count a result it never accepted)
    event_ids = [
        change_event_id(r.connector.uuid, r) if r.connector and r.scan_job_id is None else None
        for r in requests
    ]
    known = [i for i in event_ids if i]
    accepted_in = jobs_of_requests(client, known) if known else {}
    # a resubmit joins the job that accepted it only when that job is its connector's (a job gone
    # since has no owner: it is recreated as this connector's); ids are per connector, so another's
    # job there means an id shared by chance: the event is then a request of its own, never a 403
    earlier_owner = job_owners(client, set(accepted_in.values())) if accepted_in else {}
    monitors: dict[str, str] = {}
    earlier_monitors: set[str] = set()
    accepted_at = utcnow_iso()  # once per batch: formatting the time costs more than building a task
    for req, event_id in zip(requests, event_ids, strict=True):
        assert req.connector is not None
        connector = connectors[req.connector.uuid]
        job_id = req.scan_job_id
        if job_id is None and event_id and (earlier := accepted_in.get(event_id)):
            if earlier_owner.get(earlier) in (None, connector.uuid):
                job_id = earlier
                earlier_monitors.add(earlier)
            else:
                event_id = uuid.uuid4().hex
        if job_id is None:
            job_id = monitors.get(connector.uuid)
            if job_id is None:
                rolling = MonitorJobs(client, settings.jobs.monitor_roll_s, settings.jobs.retain_s)
                job_id = monitors[connector.uuid] = rolling.current(connector.uuid, connector.name)
        tasks.append(
            ScanTask(
                id=event_id or request_id_for(job_id, req.job_item_id),
                connector_uuid=connector.uuid,
                connector_name=connector.name,
                location=req.location,
                metainfo=req.metainfo,
                size_in_bytes=req.size_in_bytes,
                job_id=job_id,
                # an item id means something within a full scan's job only: change events sharing
                # one (a connector numbering its events) must not share the monitor job's done bit
                job_item_id=req.job_item_id if req.scan_job_id is not None else None,
                requested_action=req.requested_action,
                accepted_at=accepted_at,
                item_version=req.item_version,
            )
        )

    per_job = Counter(t.job_id for t in tasks)
    owners: dict[str, set[str]] = {}  # a job may be named by its own connector's requests only
    for t in tasks:
        owners.setdefault(t.job_id, set()).add(t.connector_uuid)
    check_capacity(client, settings, per_job, owners)
    monitor_ids = set(monitors.values()) | earlier_monitors
    ensure: list[tuple[str, str, str, str]] = []
    for job_id in per_job:
        first = next(t for t in tasks if t.job_id == job_id)
        kind = MONITOR if job_id in monitor_ids else "full_scan"
        ensure.append((job_id, first.connector_uuid, first.connector_name, kind))
    jobs.ensure_all(ensure)  # refreshes their TTLs
    # unchanged items are accepted and stored at once (atomically, each once) by serve_cached
    to_scan = serve_cached(tasks, connectors) if serve_cached is not None else tasks
    if to_scan:
        # Counted once per request id before publishing: a batch resubmitted because its answer was
        # lost (the core died after this point) is published again; the steps are idempotent on the id.
        texts = [t.model_dump_json() for t in to_scan]  # one encoding for the pending entry and the message
        try:
            jobs.record_accepted(
                to_scan, settings.results_db.request_state_ttl_s, settings.jobs.redispatch_after_s, texts
            )
        except ItemIdCollision as exc:  # refused before any item of the call was recorded
            raise InvalidJobId(str(exc)) from None
        publish(texts)
    if settings.redis_wait_replicas:
        # Acknowledged only once replicas hold the batch and its messages: a write after the publish
        # on this connection makes WAIT cover the broker's writes too (replication is one stream).
        touch_accept(client, tasks[0].job_id)
        replicated(client, settings.redis_wait_replicas, settings.redis_wait_timeout_ms)
    return tasks
