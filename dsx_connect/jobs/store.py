"""Job state in Redis (SPEC §6): one hash per job, updated atomically by Lua where counts matter."""

from __future__ import annotations

import time
import uuid
from typing import Any

import redis

from dsx_connect import keys
from shared.models import utcnow_iso

ACTIVE = ("running", "paused")
FINAL = ("cancelled", "completed", "failed")

# Marks the job completed once enumeration is done and every accepted item has a result.
# Expects `job` (key), `now_iso`, `now_ts` locals. Shared by the result script and enqueue_done.
COMPLETE_CHECK_LUA = """
local function complete_if_done(job, now_iso, now_ts)
  local f = redis.call('HMGET', job, 'status', 'enqueue_done', 'reported_total', 'accepted', 'processed', 'skipped')
  if f[1] ~= 'running' and f[1] ~= 'paused' then return 0 end
  if f[2] ~= '1' then return 0 end
  local total = math.max(tonumber(f[3] or '0') or 0, tonumber(f[4] or '0') or 0)
  local done = (tonumber(f[5] or '0') or 0) + (tonumber(f[6] or '0') or 0)
  if done >= total then
    redis.call('HSET', job, 'status', 'completed', 'finished', now_iso, 'finished_ts', now_ts,
               'paused', '0', 'last_update', now_iso, 'last_update_ts', now_ts)
    return 1
  end
  return 0
end
"""

_ENQUEUE_DONE_LUA = (
    COMPLETE_CHECK_LUA
    + """
if redis.call('EXISTS', KEYS[1]) == 0 then return -1 end
redis.call('HSET', KEYS[1], 'enqueue_done', '1', 'reported_total', ARGV[1], 'enumeration_finished', ARGV[2])
return complete_if_done(KEYS[1], ARGV[2], ARGV[3])
"""
)

_TRANSITION_LUA = """
local status = redis.call('HGET', KEYS[1], 'status')
if not status then return {-1, ''} end
for i = 3, #ARGV do
  if ARGV[i] == status then
    redis.call('HSET', KEYS[1], 'status', ARGV[1], 'last_update', ARGV[2])
    return {1, status}
  end
end
return {0, status}
"""


class JobNotFound(LookupError):
    pass


class InvalidTransition(RuntimeError):
    def __init__(self, job_id: str, status: str, action: str) -> None:
        super().__init__(f"cannot {action} job {job_id}: it is {status}")
        self.status = status


class JobStore:
    def __init__(self, client: redis.Redis, retain_s: int = 30 * 86400) -> None:
        self.redis = client
        self.retain_s = retain_s
        self._enqueue_done = client.register_script(_ENQUEUE_DONE_LUA)
        self._transition = client.register_script(_TRANSITION_LUA)

    # ---- creation -------------------------------------------------------------------------

    def create(
        self,
        connector_uuid: str,
        connector_name: str = "",
        kind: str = "full_scan",
        job_id: str | None = None,
        estimate: dict[str, Any] | None = None,
    ) -> str:
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
        if estimate:
            fields["estimate_count"] = "" if estimate.get("count") is None else estimate["count"]
            fields["estimate_bytes"] = "" if estimate.get("bytes") is None else estimate["bytes"]
            fields["estimate_confidence"] = estimate.get("confidence", "unknown")
        pipe = self.redis.pipeline()
        pipe.hset(keys.job(job_id), mapping=fields)
        pipe.expire(keys.job(job_id), self.retain_s)
        pipe.zadd(keys.JOBS_INDEX, {job_id: now_ts})
        pipe.execute()
        return job_id

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

    def exists(self, job_id: str) -> bool:
        return bool(self.redis.exists(keys.job(job_id)))

    # ---- progress -------------------------------------------------------------------------

    def add_accepted(self, pipe: Any, job_id: str, count: int) -> None:
        pipe.hincrby(keys.job(job_id), "accepted", count)
        pipe.hset(keys.job(job_id), mapping={"last_update": utcnow_iso(), "last_update_ts": time.time()})

    def enqueue_done(self, job_id: str, enqueued_total: int) -> bool:
        """Record the end of enumeration; returns whether the job completed with it."""
        result = self._enqueue_done(keys=[keys.job(job_id)], args=[enqueued_total, utcnow_iso(), time.time()])
        if result == -1:
            raise JobNotFound(job_id)
        return result == 1

    def add_skipped(self, job_id: str, count: int) -> None:
        self.redis.hincrby(keys.job(job_id), "skipped", count)

    def fail(self, job_id: str, reason: str) -> None:
        now_iso = utcnow_iso()
        self.redis.hset(
            keys.job(job_id),
            mapping={
                "status": "failed",
                "failure_reason": reason,
                "finished": now_iso,
                "last_update": now_iso,
            },
        )

    # ---- control --------------------------------------------------------------------------

    def transition(self, job_id: str, action: str) -> str:
        """Apply pause/resume/cancel; returns the previous status or raises InvalidTransition."""
        target, allowed = {
            "pause": ("paused", ["running"]),
            "resume": ("running", ["paused"]),
            "cancel": ("cancelled", ["running", "paused"]),
        }[action]
        code, status = self._transition(keys=[keys.job(job_id)], args=[target, utcnow_iso(), *allowed])
        if code == -1:
            raise JobNotFound(job_id)
        if code == 0:
            raise InvalidTransition(job_id, status, action)
        flags = {
            "pause": {"paused": "1"},
            "resume": {"paused": "0"},
            "cancel": {"cancel": "1", "paused": "0"},
        }
        mapping: dict[str, Any] = dict(flags[action])
        if action == "cancel":
            mapping |= {"finished": utcnow_iso(), "finished_ts": time.time()}
        self.redis.hset(keys.job(job_id), mapping=mapping)
        return status

    def flags(self, job_id: str) -> tuple[bool, bool]:
        """(paused, cancelled) as the workers see them."""
        paused, cancel = self.redis.hmget(keys.job(job_id), "paused", "cancel")
        return paused == "1", cancel == "1"

    # ---- reading --------------------------------------------------------------------------

    def raw(self, job_id: str) -> dict[str, str] | None:
        data = self.redis.hgetall(keys.job(job_id))
        return data or None

    def get(self, job_id: str) -> dict[str, Any] | None:
        data = self.raw(job_id)
        return job_view(data) if data else None

    def list(self, offset: int = 0, limit: int = 50) -> tuple[list[dict[str, Any]], int]:
        """Jobs newest first, and how many there are."""
        ids = self.redis.zrevrange(keys.JOBS_INDEX, offset, offset + limit - 1)
        pipe = self.redis.pipeline()
        for job_id in ids:
            pipe.hgetall(keys.job(job_id))
        jobs = []
        for job_id, data in zip(ids, pipe.execute(), strict=True):
            if data:
                jobs.append(job_view(data))
            else:
                self.redis.zrem(keys.JOBS_INDEX, job_id)  # expired
        return jobs, int(self.redis.zcard(keys.JOBS_INDEX))


def _int(data: dict[str, str], field: str) -> int:
    try:
        return int(data.get(field) or 0)
    except ValueError:
        return 0


def _opt_int(data: dict[str, str], field: str) -> int | None:
    value = data.get(field)
    return int(value) if value not in (None, "") else None


def job_view(data: dict[str, str]) -> dict[str, Any]:
    """The public shape of a job (SPEC §6), derived from its stored hash."""
    accepted = _int(data, "accepted")
    processed = _int(data, "processed")
    enqueue_done = data.get("enqueue_done") == "1"
    enqueued_total = max(_int(data, "reported_total"), accepted) if enqueue_done else None
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
    return {
        "job_id": data.get("job_id"),
        "connector_uuid": data.get("connector_uuid"),
        "connector_name": data.get("connector_name") or None,
        "kind": data.get("kind", "full_scan"),
        "status": data.get("status"),
        "failure_reason": data.get("failure_reason") or None,
        "enqueue_done": enqueue_done,
        "enqueued_total": enqueued_total,
        "enqueued": accepted,
        "processed": processed,
        "skipped": _int(data, "skipped"),
        "errors": _int(data, "errors"),
        "bytes_scanned": _int(data, "bytes_scanned"),
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
    }
