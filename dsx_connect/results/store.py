"""Scan results and stats in Redis: stored once per scan request id, retention-bounded (SPEC §2, §7).

Storing a result, counting it in the stats and in its job, and completing the job happen in one Lua
script, so a redelivered task can never count an item twice.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

import redis

from dsx_connect import keys
from dsx_connect.jobs.store import COMPLETE_CHECK_LUA
from dsx_connect.superlog.buffer import FEED_PUSH_LUA, FeedTarget
from shared.models import ScanResultEvent, Verdict, utcnow_iso

log = logging.getLogger(__name__)

# The stored form of an event: compact, UTF-8 as is (the same text as pydantic's ``model_dump_json``).
_COMPACT = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"))

_STORE_LUA = (
    COMPLETE_CHECK_LUA
    + FEED_PUSH_LUA
    + """
-- One call stores a whole batch (standalone Redis: keys are built here from the prefix), and queues
-- each newly stored event for the SIEM feed in the same atomic step (KEYS: the feed's queues).
-- ARGV: prefix, retain, now_iso, now_ts, feed bound, tombstone ttl, then 9 values per item:
--       id, event, verdict, bytes, failed, action, job_id, connector_uuid, cached ('1': served by
--       the unchanged-object index, counted as `cached`, its bytes not as scanned)
-- A stored request keeps a tombstone (its request state, status 'completed') for the request-state
-- TTL, past the result's own retention: a redelivered or resubmitted item whose result retention
-- already dropped is still a duplicate, counted and fed to the SIEM once.
local prefix, retain, now_iso, now_ts, feed_bound = ARGV[1], tonumber(ARGV[2]), ARGV[3], ARGV[4],
  tonumber(ARGV[5])
local tombstone_ttl = tonumber(ARGV[6])
local fed = {}
local results, index, seq_key, stats = prefix .. ':results', prefix .. ':results:idx',
  prefix .. ':results:seq', prefix .. ':stats'
local stored, touched, top = {}, {}, nil
local indexes = {}  -- the connector and job indexes this call wrote to: trimmed below, on write
-- Counter increments are summed per batch and written once per field (a third of the calls).
local deltas = {}
local function add(key, field, n)
  local fields = deltas[key]
  if not fields then fields = {}; deltas[key] = fields end
  fields[field] = (fields[field] or 0) + n
end
local function count(key, verdict, bytes, failed, action, sign)
  add(key, 'verdict:' .. verdict, sign)
  if bytes ~= 0 then add(key, 'bytes_scanned', sign * bytes) end
  if failed == '1' then add(key, 'errors', sign) end
  if action ~= '' then add(key, 'action:' .. action, sign) end
end
for i = 7, #ARGV, 9 do
  local id, event, verdict, bytes, failed, action, job_id, connector =
    ARGV[i], ARGV[i + 1], ARGV[i + 2], tonumber(ARGV[i + 3]), ARGV[i + 4], ARGV[i + 5], ARGV[i + 6], ARGV[i + 7]
  local cached = ARGV[i + 8] == '1'
  local job = prefix .. ':job:' .. job_id
  local req = prefix .. ':req:' .. id
  if redis.call('HGET', req, 'status') == 'completed' and redis.call('HEXISTS', results, id) == 0 then
    stored[#stored + 1] = 0  -- stored long ago, its result since dropped by retention
  elseif redis.call('HSETNX', results, id, event) == 1 then
    local seq = redis.call('INCR', seq_key)
    redis.call('ZADD', index, seq, id)
    redis.call('ZADD', prefix .. ':results:idx:verdict:' .. verdict, seq, id)
    redis.call('ZADD', prefix .. ':results:idx:connector:' .. connector, seq, id)
    redis.call('ZADD', prefix .. ':results:idx:job:' .. job_id, seq, id)
    indexes[prefix .. ':results:idx:connector:' .. connector] = true
    indexes[prefix .. ':results:idx:job:' .. job_id] = true
    count(stats, verdict, bytes, failed, action, 1)
    count(job, verdict, bytes, failed, action, 1)
    add(stats, 'total', 1)
    add(job, 'processed', 1)
    if cached then add(stats, 'cached', 1); add(job, 'cached', 1) end
    redis.call('DEL', req)
    redis.call('HSET', req, 'status', 'completed')
    redis.call('EXPIRE', req, tombstone_ttl)
    redis.call('HDEL', job .. ':pending', id)
    redis.call('ZREM', job .. ':due', id)
    touched[job] = job_id
    stored[#stored + 1] = 1
    fed[#fed + 1] = event
  else
    -- Already stored. A failed result (scan error, or failed action) is replaced by the outcome of a
    -- requeued dead letter, its counts moved; anything else is a redelivered duplicate, ignored.
    local old = cjson.decode(redis.call('HGET', results, id))
    local old_failed = old.error ~= nil and old.error ~= cjson.null
    local old_action = type(old.action) == 'table' and old.action or {}
    if (old_failed or old_action.status == 'error') and event ~= redis.call('HGET', results, id) then
      local old_applied = old_action.applied == true and old_action.requested or ''
      local old_bytes = tonumber((type(old.file_info) == 'table' and old.file_info.size_in_bytes) or 0) or 0
      local old_flag = old_failed and '1' or '0'
      count(stats, old.verdict, old_bytes, old_flag, old_applied, -1)
      count(job, old.verdict, old_bytes, old_flag, old_applied, -1)
      count(stats, verdict, bytes, failed, action, 1)
      count(job, verdict, bytes, failed, action, 1)
      redis.call('HSET', results, id, event)
      local seq = redis.call('ZSCORE', index, id)
      if seq then
        redis.call('ZREM', prefix .. ':results:idx:verdict:' .. old.verdict, id)
        redis.call('ZADD', prefix .. ':results:idx:verdict:' .. verdict, seq, id)
      end
      touched[job] = job_id
      stored[#stored + 1] = 2
      fed[#fed + 1] = event
    else
      stored[#stored + 1] = 0
    end
  end
end
for key, fields in pairs(deltas) do
  for field, n in pairs(fields) do
    if n ~= 0 then redis.call('HINCRBY', key, field, string.format('%d', n)) end  -- never '-0' or '1e+15'
  end
end
for job, job_id in pairs(touched) do
  redis.call('HSET', job, 'last_update', now_iso, 'last_update_ts', now_ts)
  complete_if_done(job, now_iso, now_ts)
  -- the job's results index expires with the job (JobStore keeps a TTL on every job hash)
  local ttl = redis.call('TTL', job)
  if ttl > 0 then redis.call('EXPIRE', prefix .. ':results:idx:job:' .. job_id, ttl) end
end
local excess = redis.call('ZCARD', index) - retain
if excess > 0 then
  local old = redis.call('ZPOPMIN', index, excess)
  for i = 1, #old, 2 do
    redis.call('HDEL', results, old[i])
    top = old[i + 1]
  end
  -- secondary indexes are trimmed on write: the verdict ones (few) and those this call wrote to;
  -- the index of a job that gets no more results expires with the job (above)
  for _, verdict in ipairs({'Benign', 'Malicious', 'Unknown', 'Unsupported File Type', 'Not Scanned', 'Non Compliant'}) do
    redis.call('ZREMRANGEBYSCORE', prefix .. ':results:idx:verdict:' .. verdict, '-inf', top)
  end
  for key, _ in pairs(indexes) do
    redis.call('ZREMRANGEBYSCORE', key, '-inf', top)
  end
end
return {stored, feed_push(feed_bound, fed)}
"""
)


class ResultStore:
    def __init__(
        self,
        client: redis.Redis,
        retain: int,
        request_ttl_s: int = 7 * 86400,
        feed: FeedTarget | None = None,
    ) -> None:
        self.redis = client
        self.retain = retain
        self.request_ttl_s = request_ttl_s
        self.feed = feed  # the SIEM feed's queues, filled in the same call as the store
        self._store = client.register_script(_STORE_LUA)

    def store_many(self, events: Sequence[ScanResultEvent | dict[str, Any]]) -> list[bool]:
        """Store each event once; returns, per event, whether this call stored it (False: a duplicate).

        Events come as models or as their JSON dicts (the result step builds dicts, see
        ``ItemOutcome.event_dict``). A stored result that records a failure (scan error, failed
        action) is replaced by a later outcome of the same request (a requeued dead letter), its
        counts moved to the new verdict.
        """
        if not events:
            return []
        feed_bound = self.feed.bound if self.feed else 0
        args: list[str | int | float] = [
            keys.PREFIX, self.retain, utcnow_iso(), time.time(), feed_bound, self.request_ttl_s,
        ]  # fmt: skip
        for event in events:
            data = event if isinstance(event, dict) else event.model_dump(mode="json")
            action = data["action"]
            cached = bool((data.get("scanner") or {}).get("cached"))
            args += [
                data["scan_request_id"],
                _COMPACT.encode(data),
                data["verdict"],
                0 if cached else data["file_info"]["size_in_bytes"],
                "1" if data.get("error") else "0",
                action["requested"] if action["applied"] else "",
                data["job_id"],
                data["connector"]["uuid"],
                "1" if cached else "0",
            ]
        stored, dropped = self._store(keys=self.feed.keys if self.feed else [], args=args)
        if self.feed and any(dropped):
            lost = dict(zip(self.feed.destinations, (int(n) for n in dropped), strict=True))
            log.warning("superlog: buffers full, oldest events dropped: %s", lost)
        return [bool(flag) for flag in stored]

    def get_many(self, request_ids: Sequence[str]) -> list[str | None]:
        """Stored events as JSON text, in order (None where there is none)."""
        return self.redis.hmget(keys.RESULTS, list(request_ids)) if request_ids else []

    def get(self, request_id: str) -> dict[str, Any] | None:
        raw = self.redis.hget(keys.RESULTS, request_id)
        return json.loads(raw) if raw else None

    def query(
        self,
        verdict: str | None = None,
        connector: str | None = None,
        job: str | None = None,
        since: datetime | None = None,
        offset: int = 0,
        limit: int = 50,
    ) -> tuple[list[dict[str, Any]], int | None]:
        """Results newest first, filtered; returns the page and the exact total when it is known cheaply."""
        filters = {"verdict": verdict, "connector": connector, "job": job}
        chosen = next(
            ((k, v) for k, v in (("job", job), ("connector", connector), ("verdict", verdict)) if v), None
        )
        index = keys.results_by(*chosen) if chosen else keys.RESULTS_INDEX
        post = {k: v for k, v in filters.items() if v and (chosen is None or k != chosen[0])}
        items: list[dict[str, Any]] = []
        skipped, start, page = 0, 0, max(limit * 2, 100)
        while len(items) < limit:
            ids = self.redis.zrevrange(index, start, start + page - 1)
            if not ids:
                break
            start += page
            stale = []
            for request_id, raw in zip(ids, self.redis.hmget(keys.RESULTS, ids), strict=True):
                if raw is None:
                    stale.append(request_id)
                    continue
                event = json.loads(raw)
                if since is not None and _parse_ts(event.get("timestamp")) < since:
                    ids = []  # newest first: everything further is older
                    break
                if not _matches(event, post):
                    continue
                if skipped < offset:
                    skipped += 1
                    continue
                items.append(event)
                if len(items) >= limit:
                    break
            if stale and index != keys.RESULTS_INDEX:
                self.redis.zrem(index, *stale)
            if not ids:
                break
        total = None if (post or since) else int(self.redis.zcard(index))
        return items, total

    def stats(self) -> dict[str, Any]:
        data = self.redis.hgetall(keys.STATS)
        verdicts = {v.value: 0 for v in Verdict if v is not Verdict.SCANNING}
        verdicts |= {k.split(":", 1)[1]: int(v) for k, v in data.items() if k.startswith("verdict:")}
        return {
            "total": int(data.get("total", 0)),
            "verdicts": verdicts,
            "errors": int(data.get("errors", 0)),
            "bytes_scanned": int(data.get("bytes_scanned", 0)),
            "cached": int(data.get("cached", 0)),
            "actions": {k.split(":", 1)[1]: int(v) for k, v in data.items() if k.startswith("action:")},
            "retained_results": int(self.redis.zcard(keys.RESULTS_INDEX)),
        }


def _matches(event: dict[str, Any], filters: dict[str, str]) -> bool:
    for kind, value in filters.items():
        if kind == "verdict" and event.get("verdict") != value:
            return False
        if kind == "connector" and (event.get("connector") or {}).get("uuid") != value:
            return False
        if kind == "job" and event.get("job_id") != value:
            return False
    return True


def _parse_ts(value: str | None) -> datetime:
    if not value:
        return datetime.min.replace(tzinfo=UTC)
    parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)
