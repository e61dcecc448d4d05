"""The rolling monitor job: where a connector's change events (scan requests without a job) go.

Each connector has at most one current monitor job (kind ``monitor``), named by
``keys.monitor_job(connector_uuid)``. Requests without ``scan_job_id`` (the watcher, webhooks, a
1.x connector's single requests) join it instead of making a job each, so the job index and the
per-job keys grow with connectors and days, not with events. A monitor job never finishes
enumerating; it rolls over to a new one

* after ``DSXCONNECT_JOBS__MONITOR_ROLL_S`` (a day by default): the old one is then marked
  enumerated with what it accepted, so it completes once its last items have results;
* when an operator cancelled it, or the stall sweep failed it: the next event starts a new one.

Its hash expires ``DSXCONNECT_JOBS__RETAIN_S`` after its last event (each accept refreshes the
TTL, ``JobStore.ensure``), its pending hash with the request states, and its results index with
the hash (the result store copies the job's TTL onto it).
"""

from __future__ import annotations

import re
import time

import redis

from dsx_connect import keys
from dsx_connect.state.job_scripts import COMPLETE_CHECK_LUA
from shared.models import utcnow_iso

KIND = "monitor"

# KEYS: pointer, active set, jobs index. ARGV: prefix, candidate id, now_iso, now_ts, roll_s,
# retain_s, connector uuid, connector name. Returns the current monitor job id (creating it).
_CURRENT_LUA = (
    COMPLETE_CHECK_LUA
    + """
local prefix, candidate, now_iso, now_ts = ARGV[1], ARGV[2], ARGV[3], ARGV[4]
local roll_s, retain_s = tonumber(ARGV[5]), tonumber(ARGV[6])
local current = redis.call('GET', KEYS[1])
if current then
  local job = prefix .. ':job:' .. current
  local f = redis.call('HMGET', job, 'status', 'created_ts', 'accepted')
  if f[1] == 'running' or f[1] == 'paused' then
    if tonumber(now_ts) - (tonumber(f[2] or '0') or 0) < roll_s then
      return current
    end
    -- rolled over: what it accepted is all it gets; it completes when those items have results
    redis.call('HSET', job, 'enqueue_done', '1', 'reported_total', f[3] or '0',
               'enumeration_finished', now_iso)
    redis.call('HINCRBY', job, 'control_rev', 1)
    complete_if_done(job, now_iso, now_ts)
  end
end
if current == candidate then candidate = candidate .. '-1' end  -- rolled within the same second
local job = prefix .. ':job:' .. candidate
redis.call('HSET', job, 'job_id', candidate, 'connector_uuid', ARGV[7], 'connector_name', ARGV[8],
           'kind', 'monitor', 'status', 'running', 'created', now_iso, 'created_ts', now_ts,
           'started', now_iso, 'started_ts', now_ts, 'last_update', now_iso, 'last_update_ts', now_ts)
redis.call('EXPIRE', job, retain_s)
redis.call('ZADD', KEYS[3], now_ts, candidate)
redis.call('SADD', KEYS[2], candidate)
redis.call('SET', KEYS[1], candidate, 'EX', retain_s)
return candidate
"""
)

_UNSAFE = re.compile(r"[^A-Za-z0-9._-]")


def monitor_job_id(connector_uuid: str, now: float) -> str:
    """A new monitor job's id: ``monitor-<uuid>-<unix seconds>`` (only ``[A-Za-z0-9._-]``)."""
    return f"monitor-{_UNSAFE.sub('-', connector_uuid)[:64]}-{int(now)}"


class MonitorJobs:
    """Finds (or starts) each connector's current monitor job, atomically across API replicas."""

    def __init__(self, client: redis.Redis, roll_s: float, retain_s: int) -> None:
        self.redis = client
        self.roll_s = roll_s
        self.retain_s = retain_s
        self._current = client.register_script(_CURRENT_LUA)

    def current(self, connector_uuid: str, connector_name: str = "", now: float | None = None) -> str:
        """The id of the connector's running monitor job; a new one when there is none or it rolled over."""
        now = time.time() if now is None else now
        job_id = self._current(
            keys=[keys.monitor_job(connector_uuid), keys.JOBS_ACTIVE, keys.JOBS_INDEX],
            args=[
                keys.PREFIX,
                monitor_job_id(connector_uuid, now),
                utcnow_iso(),
                now,
                self.roll_s,
                self.retain_s,
                connector_uuid,
                connector_name,
            ],
        )
        return str(job_id)
