"""Job state in Redis (SPEC §6): one hash per job, updated atomically by Lua where counts matter.

Every change of a job's state that a reader can see is published on ``channel_job(job_id)`` (by the
notification worker after each batch of results, and here after every control change), so the SSE
streams of any API replica follow it.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Iterable, Sequence
from typing import Any

import redis
import redis.asyncio as aredis

from dsx_connect import keys
from dsx_connect.jobs.done import done_bit
from dsx_connect.state.job_scripts import (
    ACCEPT_LUA,
    CLAIM_EXPIRED_LUA,
    COMPLETE_CHECK_LUA,
    ENQUEUE_DONE_LUA,
    FAIL_LUA,
    SKIP_LUA,
    TRANSITION_LUA,
)
from shared.models import MAX_REPORTED_SIZE, ScanTask, utcnow_iso

__all__ = [
    "ACTIVE",
    "COMPLETE_CHECK_LUA",
    "FINAL",
    "InvalidTransition",
    "JobNotFound",
    "JobStore",
    "job_view",
]

ACTIVE = ("running", "paused")
DEFAULT_LEASE_S = 720.0  # DSXCONNECT_JOBS__REDISPATCH_AFTER_S's default
FINAL = ("cancelled", "completed", "failed")
_LIST_SCAN_CAP = 20_000  # index entries a filtered listing reads at most

JobViews = list[dict[str, Any]]  # (inside JobStore, ``list`` names its method)


class JobNotFound(LookupError):
    pass


class ItemIdCollision(ValueError):
    """A request id already accepted for another location: one item id given to two items (422)."""


class InvalidTransition(RuntimeError):
    def __init__(self, job_id: str, status: str, action: str) -> None:
        super().__init__(f"cannot {action} job {job_id}: it is {status}")
        self.status = status


class JobStore:
    def __init__(self, client: redis.Redis, retain_s: int = 30 * 86400) -> None:
        self.redis = client
        self.retain_s = retain_s
        self._enqueue_done = client.register_script(ENQUEUE_DONE_LUA)
        self._transition = client.register_script(TRANSITION_LUA)
        self._fail = client.register_script(FAIL_LUA)
        self._accept = client.register_script(ACCEPT_LUA)
        self._skip = client.register_script(SKIP_LUA)
        self._claim_expired = client.register_script(CLAIM_EXPIRED_LUA)

    # ---- creation -------------------------------------------------------------------------

    def create(
        self,
        connector_uuid: str,
        connector_name: str = "",
        kind: str = "full_scan",
        job_id: str | None = None,
        estimate: dict[str, Any] | None = None,
        trigger: str | None = None,
        force: bool = False,
    ) -> str:
        """Create a job; ``trigger`` says who started it (``api``, ``schedule``, ``scanner_change``);
        ``force``: its items are read and scanned even when unchanged (dsx_connect/cache)."""
        job_id = job_id or uuid.uuid4().hex
        now_iso, now_ts = utcnow_iso(), time.time()
        fields: dict[str, Any] = {
            "job_id": job_id,
            "connector_uuid": connector_uuid,
            "connector_name": connector_name,
            "kind": kind,
            "status": "running",
            "created": now_iso,
            "created_ts": now_ts,
            "started": now_iso,
            "started_ts": now_ts,
            "last_update": now_iso,
            "last_update_ts": now_ts,
        }
        if trigger:
            fields["trigger"] = trigger
        if force:  # scan every item, the unchanged ones too (dsx_connect/cache)
            fields["force"] = "1"
        if estimate:
            fields["estimate_count"] = "" if estimate.get("count") is None else estimate["count"]
            fields["estimate_bytes"] = "" if estimate.get("bytes") is None else estimate["bytes"]
            fields["estimate_confidence"] = estimate.get("confidence", "unknown")
        pipe = self.redis.pipeline()
        pipe.hset(keys.job(job_id), mapping=fields)
        pipe.expire(keys.job(job_id), self.retain_s)
        pipe.zadd(keys.JOBS_INDEX, {job_id: now_ts})
        pipe.zremrangebyscore(keys.JOBS_INDEX, "-inf", now_ts - self.retain_s)  # trimmed on write
        pipe.sadd(keys.JOBS_ACTIVE, job_id)
        pipe.execute()
        return job_id

    def fields_of(self, job_ids: Sequence[str], fields: Sequence[str]) -> list[list[str | None]]:
        """``fields`` of each job's hash, in order (None where unset), in one round trip."""
        pipe = self.redis.pipeline(transaction=False)
        for job_id in job_ids:
            pipe.hmget(keys.job(job_id), *fields)
        return list(pipe.execute())

    def pending_counts(self, job_ids: Sequence[str]) -> list[int]:
        """How many accepted items of each job have no outcome yet."""
        pipe = self.redis.pipeline(transaction=False)
        for job_id in job_ids:
            pipe.hlen(keys.job_pending(job_id))
        return [int(n) for n in pipe.execute()]

    def forget_finished(self, job_ids: Sequence[str]) -> None:
        """Drop finished jobs from the active set, with their pending hashes and lease zsets."""
        self.redis.srem(keys.JOBS_ACTIVE, *job_ids)
        self.redis.delete(
            *(key for job_id in job_ids for key in (keys.job_pending(job_id), keys.job_due(job_id)))
        )

    def count_redispatched(self, job_id: str, n: int) -> None:
        """Count items of the job sent again after their lease passed."""
        self.redis.hincrby(keys.job(job_id), "redispatched", n)

    def claim_complete_log(self, job_id: str, ttl_s: int) -> bool:
        """True for the first caller only (within ``ttl_s``): who logs the job's ``job.complete`` line."""
        return bool(self.redis.set(f"{keys.job(job_id)}:complete_logged", "1", nx=True, ex=ttl_s))

    def ttl_or_retain(self, job_id: str) -> int:
        """Seconds before the job's record expires; a record found without an expiry (re-created by a
        late update) gets the retention now, so no job is kept forever."""
        key = keys.job(job_id)
        ttl = int(self.redis.ttl(key))
        if ttl == -1:
            self.redis.expire(key, self.retain_s)
            ttl = self.retain_s
        return ttl

    def ensure_all(self, jobs: Sequence[tuple[str, str, str, str]]) -> None:
        """:meth:`ensure` each (job id, connector uuid, connector name, kind), in one round trip."""
        pipe = self.redis.pipeline(transaction=False)
        for job_id, connector_uuid, connector_name, kind in jobs:
            self.ensure(pipe, job_id, connector_uuid, connector_name, kind)
        pipe.execute()

    def ensure(self, pipe: Any, job_id: str, connector_uuid: str, connector_name: str, kind: str) -> None:
        """Create a job implicitly, in ``pipe``, if it does not exist (a change event, a connector-side scan)."""
        now_iso, now_ts = utcnow_iso(), time.time()
        key = keys.job(job_id)
        for field, value in (
            ("job_id", job_id),
            ("connector_uuid", connector_uuid),
            ("connector_name", connector_name),
            ("kind", kind),
            ("status", "running"),
            ("created", now_iso),
            ("created_ts", now_ts),
            ("started", now_iso),
            ("started_ts", now_ts),
        ):
            pipe.hsetnx(key, field, value)
        pipe.expire(key, self.retain_s)
        pipe.zadd(keys.JOBS_INDEX, {job_id: now_ts}, nx=True)
        pipe.zremrangebyscore(keys.JOBS_INDEX, "-inf", now_ts - self.retain_s)  # trimmed on write
        pipe.sadd(keys.JOBS_ACTIVE, job_id)  # a finished one is dropped again by the next stall sweep

    def exists(self, job_id: str) -> bool:
        return bool(self.redis.exists(keys.job(job_id)))

    # ---- progress -------------------------------------------------------------------------

    def add_accepted(self, pipe: Any, job_id: str, count: int) -> None:
        pipe.hincrby(keys.job(job_id), "accepted", count)
        pipe.hset(keys.job(job_id), mapping={"last_update": utcnow_iso(), "last_update_ts": time.time()})

    def record_accepted(
        self,
        tasks: Sequence[ScanTask],
        ttl_s: int,
        lease_s: float = DEFAULT_LEASE_S,
        texts: Sequence[str] | None = None,
    ) -> dict[str, int]:
        """Record each task's queued state and count it in its job, once per scan request id.

        A request already known (queued, or with a stored result) is not counted again, so a batch
        resubmitted after a lost answer keeps the job's counts exact. Each new one is pending with a
        lease of ``lease_s`` (see :meth:`renew_leases`). Returns the new counts per job.
        ``texts``: each task's ``model_dump_json()``, when the caller has it already.
        """
        if not tasks:
            return {}
        now = time.time()
        slots: dict[str, int] = {}
        for task in tasks:
            slots.setdefault(task.job_id, len(slots) + 1)
        script_keys = [keys.RESULTS]
        for job_id in slots:
            script_keys += [
                keys.job(job_id),
                keys.job_done(job_id),
                keys.job_pending(job_id),
                keys.job_due(job_id),
            ]
        args: list[str | int | float] = [ttl_s, utcnow_iso(), now, now + lease_s, len(slots), *slots]
        encoded = texts if texts is not None else [task.model_dump_json() for task in tasks]
        for task, text in zip(tasks, encoded, strict=True):
            script_keys.append(keys.request_state(task.id))
            args += [
                task.id, slots[task.job_id], task.location, task.connector_uuid, task.accepted_at, "queued",
                text, done_bit(task.job_item_id),
            ]  # fmt: skip
        flat = self._accept(keys=script_keys, args=args)
        if flat and flat[0] == "!collision":
            _, request_id, was, now = flat
            raise ItemIdCollision(
                f"scan request {request_id} (a job_item_id of its job) was accepted for {was[:200]!r}, "
                f"not {now[:200]!r}: each item of a job needs its own job_item_id"
            )
        return {str(flat[i]): int(flat[i + 1]) for i in range(0, len(flat), 2)}

    def renew_leases(self, tasks: Iterable[ScanTask], lease_s: float) -> None:
        """A worker took these items: their leases run ``lease_s`` from now (only items still pending).

        A step renews the leases of its batch when it starts, so an item is sent again only when no
        worker held it for a whole lease: its message was lost, not merely slow.
        """
        until = time.time() + lease_s
        by_job: dict[str, dict[str, float]] = {}
        for task in tasks:
            by_job.setdefault(task.job_id, {})[task.id] = until
        if not by_job:
            return
        pipe = self.redis.pipeline(transaction=False)
        for job_id, leases in by_job.items():
            pipe.zadd(keys.job_due(job_id), leases, xx=True)  # xx: a finished item gets no lease back
        pipe.execute()

    def triage(self, tasks: Sequence[ScanTask]) -> tuple[set[str], set[str]]:
        """(finished, superseded): the ids among ``tasks`` that need no scan.

        *Finished*: the result is stored, or a cancelled job skipped the item (the marks the result
        store and the skip leave: the done bit, else the request state; the state too for an item
        whose bit reads 0 in a job that kept some items' marks as states, ``done_spilled`` or gone,
        see ``dsx_connect.jobs.done``). A copy of such an item (a resubmitted batch, a redelivery)
        needs no second scan.

        *Superseded*: the lease sweep sent the item again since this copy was queued (its
        ``resend`` is below the item's count in ``keys.job_resent``). Only the newest copy is
        scanned, so copies sent while a long queue drains replace one another instead of piling up.

        A requeued dead letter is neither: an operator asked for its scan (its failed result waits to
        be replaced), whichever copy its letter kept.

        Advisory, read without a lock: a copy checked just before the other's result lands is
        scanned twice, and still stored and counted once.
        """
        if not tasks:
            return set(), set()
        by_job: dict[str, list[ScanTask]] = {}
        for task in tasks:
            by_job.setdefault(task.job_id, []).append(task)
        pipe = self.redis.pipeline(transaction=False)
        pipe.exists(keys.DEAD_LETTERS_REQUEUED)
        for job_id, items in by_job.items():
            pipe.hmget(keys.job_resent(job_id), [task.id for task in items])
        # the done bits of a job in one BITFIELD_RO (a GETBIT each cost the client ~4.6 us an item,
        # packing and parsing a command per item: 3.3 us more than this); items without one: their state
        with_bit: dict[str, list[tuple[ScanTask, int]]] = {}
        without_bit: list[ScanTask] = []
        for task in tasks:
            bit = done_bit(task.job_item_id)
            if bit:
                with_bit.setdefault(task.job_id, []).append((task, bit))
            else:
                without_bit.append(task)
        for job_id, marked in with_bit.items():
            fields: list[str | int] = []
            for _, bit in marked:
                fields += ["GET", "u1", bit]
            pipe.execute_command("BITFIELD_RO", keys.job_done(job_id), *fields)
            # whether some of the job's items were marked by their state though they have a bit
            pipe.hmget(keys.job(job_id), "status", "done_spilled")
        for task in without_bit:
            pipe.hget(keys.request_state(task.id), "status")
        requeued, *answers = pipe.execute()
        resent = {
            task.id: int(count or 0)
            for items, counts in zip(by_job.values(), answers[: len(by_job)], strict=True)
            for task, count in zip(items, counts, strict=True)
        }
        superseded = {task.id for task in tasks if task.resend < resent[task.id]}
        marks: dict[str, object] = {}
        bit_answers = answers[len(by_job) : len(by_job) + 2 * len(with_bit)]
        unset: list[ScanTask] = []  # bit 0 in a job that keeps some marks as states: read the state
        for marked, values, (status, spilled) in zip(
            with_bit.values(), bit_answers[0::2], bit_answers[1::2], strict=True
        ):
            spills = status is None or bool(spilled)  # a job gone stored its items' marks as states
            for (task, _), value in zip(marked, values, strict=True):
                marks[task.id] = value
                if spills and value != 1:
                    unset.append(task)
        for task, status in zip(without_bit, answers[len(by_job) + 2 * len(with_bit) :], strict=True):
            marks[task.id] = status
        if unset:  # rare: a second round trip only for such jobs
            pipe = self.redis.pipeline(transaction=False)
            for task in unset:
                pipe.hget(keys.request_state(task.id), "status")
            for task, status in zip(unset, pipe.execute(), strict=True):
                marks[task.id] = status
        done = {
            task.id
            for task in tasks
            if marks[task.id] in (1, "completed", b"completed") and task.id not in superseded
        }
        if (done or superseded) and requeued:  # an operator's requeue is always scanned
            candidates = list(done | superseded)
            pipe = self.redis.pipeline(transaction=False)
            for request_id in candidates:
                pipe.zscore(keys.DEAD_LETTERS_REQUEUED, request_id)
            leased = {
                request_id for request_id, lease in zip(candidates, pipe.execute(), strict=True) if lease
            }
            done, superseded = done - leased, superseded - leased
        return done, superseded

    def claim_expired(
        self, job_id: str, lease_s: float, limit: int = 5000, now: float | None = None
    ) -> list[dict[str, Any]]:
        """The scan tasks of the job's pending items whose lease passed, their leases renewed, each
        numbered as the item's newest copy (``resend``): the copies still queued are superseded."""
        now = time.time() if now is None else now
        found = self._claim_expired(
            keys=[keys.job_pending(job_id), keys.job_due(job_id), keys.DEAD_LETTERS],
            args=[now, now + lease_s, limit],
        )
        if not found:
            return []
        tasks = [json.loads(raw) for raw in found]
        pipe = self.redis.pipeline(transaction=False)
        for task in tasks:
            pipe.hincrby(keys.job_resent(job_id), task["id"], 1)
        pipe.expire(keys.job_resent(job_id), self.retain_s)
        for task, resend in zip(tasks, pipe.execute(), strict=False):
            task["resend"] = resend
        return tasks

    def enqueue_done(self, job_id: str, enqueued_total: int, failure: str | None = None) -> bool:
        """Record the end of enumeration (failed when ``failure`` is given); True if the job completed."""
        result = self._enqueue_done(
            keys=[keys.job(job_id), keys.JOBS_ACTIVE, keys.job_pending(job_id), keys.job_due(job_id)],
            args=[enqueued_total, utcnow_iso(), time.time(), failure or ""],
        )
        if result == -1:
            raise JobNotFound(job_id)
        self.publish(job_id)
        return result == 1

    def add_skipped(
        self, job_id: str, request_ids: Sequence[str], ttl_s: int, job_item_ids: Sequence[str | None] = ()
    ) -> int:
        """Count items of a cancelled job that a worker reached and dropped, once per request id.

        ``job_item_ids`` (in the order of ``request_ids``; none by default) mark each item in the
        job's done bitmap rather than with a tombstone key (``dsx_connect.jobs.done``).
        Returns how many were new: a redelivered batch counts nothing twice.
        """
        bits = [done_bit(item) for item in job_item_ids] or [0] * len(request_ids)
        pairs = [value for pair in zip(request_ids, bits, strict=True) for value in pair]
        script_keys = [
            keys.RESULTS, keys.job(job_id), keys.job_done(job_id), keys.job_skipped(job_id),
            keys.job_pending(job_id), keys.job_due(job_id),
            *(keys.request_state(request_id) for request_id in request_ids),
        ]  # fmt: skip
        added = int(self._skip(keys=script_keys, args=[ttl_s, utcnow_iso(), time.time(), job_id, *pairs]))
        self.publish(job_id)
        return added

    def fail(self, job_id: str, reason: str, *, idle_since: float | None = None) -> bool:
        """Mark a running or paused job failed with ``reason``; False if it was not active.

        With ``idle_since`` (a Unix time), only a running job whose last progress is not newer than
        that is failed: the check and the update are one Lua call, so API replicas sweeping at the
        same time fail a stalled job once, and never one that just made progress.
        """
        failed = self._fail(
            keys=[keys.job(job_id), keys.JOBS_ACTIVE, keys.job_pending(job_id)],
            args=[reason, utcnow_iso(), time.time(), "" if idle_since is None else idle_since,
                  "1" if idle_since is not None else "0"],
        )  # fmt: skip
        if failed:
            self.publish(job_id)
        return bool(failed)

    # ---- control --------------------------------------------------------------------------

    def transition(self, job_id: str, action: str) -> str:
        """Apply pause/resume/cancel; returns the previous status or raises InvalidTransition."""
        if action not in ("pause", "resume", "cancel"):
            raise ValueError(f"unknown job action {action!r}")
        code, status = self._transition(
            keys=[keys.job(job_id), keys.JOBS_ACTIVE], args=[action, utcnow_iso(), time.time()]
        )
        if code == -1:
            raise JobNotFound(job_id)
        if code == 0:
            raise InvalidTransition(job_id, status, action)
        self.publish(job_id)
        return status

    def flags(self, job_id: str) -> tuple[bool, bool]:
        """(paused, cancelled) as the workers see them."""
        paused, cancel = self.redis.hmget(keys.job(job_id), "paused", "cancel")
        return paused == "1", cancel == "1"

    def publish(self, job_id: str) -> None:
        """Publish the job's current view on its channel (read by the job-summary SSE streams)."""
        data = self.raw(job_id)
        if data:
            self.redis.publish(keys.channel_job(job_id), json.dumps(job_view(data)))

    # ---- reading --------------------------------------------------------------------------

    def raw(self, job_id: str) -> dict[str, str] | None:
        data = self.redis.hgetall(keys.job(job_id))
        return data or None

    def get(self, job_id: str) -> dict[str, Any] | None:
        data = self.raw(job_id)
        return job_view(data) if data else None

    def active_ids(self) -> list[str]:
        """Ids in the active set (running or paused when added; finished ones until the next sweep)."""
        return sorted(self.redis.sscan_iter(keys.JOBS_ACTIVE, count=500))

    def list(
        self,
        offset: int = 0,
        limit: int = 50,
        statuses: Iterable[str] | None = None,
        kind: str | None = None,
    ) -> tuple[JobViews, int | None]:
        """Jobs newest first, optionally of some statuses and one kind; and how many match.

        Unfiltered, or filtered on active statuses only, the total is exact. Other filters read at
        most the newest 20,000 jobs, and the total is None when that did not cover the index.
        """
        wanted = set(statuses or ())
        if not wanted and not kind:
            ids = self.redis.zrevrange(keys.JOBS_INDEX, offset, offset + limit - 1)
            return self._views(ids), int(self.redis.zcard(keys.JOBS_INDEX))
        if wanted and wanted <= set(ACTIVE):
            active = self.active_ids()
            scores = self.redis.zmscore(keys.JOBS_INDEX, active) if active else []
            ordered = [j for _, j in sorted(zip(scores, active, strict=True), key=lambda p: -(p[0] or 0))]
            views, exhaustive = self._views(ordered), True
        else:
            ids = self.redis.zrevrange(keys.JOBS_INDEX, 0, _LIST_SCAN_CAP - 1)
            views, exhaustive = self._views(ids), len(ids) < _LIST_SCAN_CAP
        matching = [
            v for v in views if (not wanted or v["status"] in wanted) and (not kind or v["kind"] == kind)
        ]
        return matching[offset : offset + limit], len(matching) if exhaustive else None

    def _views(self, ids: Sequence[str]) -> JobViews:
        pipe = self.redis.pipeline(transaction=False)
        for job_id in ids:
            pipe.hgetall(keys.job(job_id))
        views: JobViews = []
        expired: list[str] = []
        for job_id, data in zip(ids, pipe.execute() if ids else [], strict=True):
            if data:
                views.append(job_view(data))
            else:
                expired.append(job_id)
        if expired:
            self.redis.zrem(keys.JOBS_INDEX, *expired)
            self.redis.srem(keys.JOBS_ACTIVE, *expired)
        return views


def _int(data: dict[str, str], field: str) -> int:
    try:
        return int(data.get(field) or 0)
    except ValueError:
        return 0


def _reported(value: int) -> int:
    """A count a connector reported, within what any real one can be: a record stored before the
    API bounded them may hold a number past a float, which ``remaining / throughput`` cannot take."""
    return max(-MAX_REPORTED_SIZE, min(value, MAX_REPORTED_SIZE))


def _opt_int(data: dict[str, str], field: str) -> int | None:
    value = data.get(field)
    try:  # a job stored before estimates were validated may hold anything a connector answered
        return _reported(int(value)) if value not in (None, "") else None
    except ValueError:
        return None


def job_rev(data: dict[str, str]) -> int:
    """A number that grows with every visible change of the job (its counters only grow)."""
    return sum(_int(data, f) for f in ("accepted", "processed", "skipped", "control_rev"))


def job_view(data: dict[str, str]) -> dict[str, Any]:
    """The public shape of a job (SPEC §6), derived from its stored hash."""
    accepted = _int(data, "accepted")
    processed = _int(data, "processed")
    skipped = _int(data, "skipped")
    enqueue_done = data.get("enqueue_done") == "1"
    enqueued_total = max(_reported(_int(data, "reported_total")), accepted) if enqueue_done else None
    started_ts = float(data.get("started_ts") or data.get("created_ts") or 0)
    end_ts = float(data.get("finished_ts") or data.get("last_update_ts") or started_ts)
    elapsed = max(end_ts - started_ts, 0.0)
    throughput = processed / elapsed if elapsed > 0 and processed else 0.0
    remaining = (
        enqueued_total if enqueued_total is not None else _opt_int(data, "estimate_count") or accepted
    ) - processed
    eta_s = (
        remaining / throughput
        if throughput > 0 and remaining > 0 and data.get("status") == "running"
        else None
    )
    verdicts = {k.split(":", 1)[1]: int(v) for k, v in data.items() if k.startswith("verdict:")}
    actions = {k.split(":", 1)[1]: int(v) for k, v in data.items() if k.startswith("action:")}
    known_total = enqueued_total if enqueued_total is not None else accepted
    return {
        "job_id": data.get("job_id"),
        "connector_uuid": data.get("connector_uuid"),
        "connector_name": data.get("connector_name") or None,
        "kind": data.get("kind", "full_scan"),
        "trigger": data.get("trigger") or None,
        "status": data.get("status"),
        "failure_reason": data.get("failure_reason") or None,
        "enqueue_done": enqueue_done,
        "enqueued_total": enqueued_total,
        "enqueued": accepted,
        "processed": processed,
        "skipped": skipped,
        # accepted but neither scanned nor skipped yet: a cancelled job skips these as workers reach them
        "not_yet_scanned": max(known_total - processed - skipped, 0),
        "errors": _int(data, "errors"),
        "bytes_scanned": _int(data, "bytes_scanned"),
        "cached": _int(data, "cached"),  # served by the unchanged-object index (dsx_connect/cache)
        "force": data.get("force") == "1",
        "verdicts": verdicts,
        "actions": actions,
        "estimate": {
            "count": _opt_int(data, "estimate_count"),
            "bytes": _opt_int(data, "estimate_bytes"),
            "confidence": data.get("estimate_confidence", "unknown"),
        },
        "created": data.get("created"),
        "started": data.get("started"),
        "finished": data.get("finished") or None,
        "last_update": data.get("last_update"),
        "throughput_fps": round(throughput, 2),
        "eta_s": round(eta_s, 1) if eta_s is not None else None,
        "paused": data.get("paused") == "1",
        "cancel": data.get("cancel") == "1",
        "stalled": data.get("stalled") == "1",
        "rev": job_rev(data),
    }


def job_owner(client: redis.Redis, job_id: str) -> str | None:
    """The uuid of the connector whose job this is (None for an unknown job)."""
    owner: str | None = client.hget(keys.job(job_id), "connector_uuid")
    return owner


# ---- async readers (the SSE streams) ------------------------------------------------------------


async def async_job_exists(client: aredis.Redis, job_id: str) -> bool:
    return bool(await client.exists(keys.job(job_id)))


async def async_job_record(client: aredis.Redis, job_id: str) -> dict[str, str]:
    """The job's stored hash (empty when unknown)."""
    record: dict[str, str] = await client.hgetall(keys.job(job_id))
    return record
