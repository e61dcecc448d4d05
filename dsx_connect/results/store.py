"""Scan results and stats in Redis: stored once per scan request id, retention-bounded (SPEC §2, §7).

Storing a result, counting it in the stats and in its job, and completing the job happen in one Lua
script, so a redelivered task can never count an item twice.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any

import redis

from dsx_connect import keys
from dsx_connect.jobs.store import COMPLETE_CHECK_LUA
from shared.models import ScanResultEvent, Verdict, utcnow_iso

_STORE_LUA = (
    COMPLETE_CHECK_LUA
    + """
-- KEYS: results, index, seq, stats, job, by_verdict, by_connector, by_job, request_state
-- ARGV: id, event, verdict, bytes, failed, action, retain, now_iso, now_ts
if redis.call('HSETNX', KEYS[1], ARGV[1], ARGV[2]) == 0 then return 0 end
local seq = redis.call('INCR', KEYS[3])
redis.call('ZADD', KEYS[2], seq, ARGV[1])
redis.call('ZADD', KEYS[6], seq, ARGV[1])
redis.call('ZADD', KEYS[7], seq, ARGV[1])
redis.call('ZADD', KEYS[8], seq, ARGV[1])
local bytes = tonumber(ARGV[4])
for _, key in ipairs({KEYS[4], KEYS[5]}) do
  redis.call('HINCRBY', key, 'verdict:' .. ARGV[3], 1)
  redis.call('HINCRBY', key, 'bytes_scanned', bytes)
  if ARGV[5] == '1' then redis.call('HINCRBY', key, 'errors', 1) end
  if ARGV[6] ~= '' then redis.call('HINCRBY', key, 'action:' .. ARGV[6], 1) end
end
redis.call('HINCRBY', KEYS[4], 'total', 1)
redis.call('HINCRBY', KEYS[5], 'processed', 1)
redis.call('HSET', KEYS[5], 'last_update', ARGV[8], 'last_update_ts', ARGV[9])
redis.call('DEL', KEYS[9])
complete_if_done(KEYS[5], ARGV[8], ARGV[9])
local excess = redis.call('ZCARD', KEYS[2]) - tonumber(ARGV[7])
if excess > 0 then
  local old = redis.call('ZPOPMIN', KEYS[2], excess)
  local top = 0
  for i = 1, #old, 2 do
    redis.call('HDEL', KEYS[1], old[i])
    top = tonumber(old[i + 1])
  end
  for i = 6, 8 do redis.call('ZREMRANGEBYSCORE', KEYS[i], '-inf', top) end
end
return 1
"""
)


class ResultStore:
    def __init__(self, client: redis.Redis, retain: int, request_ttl_s: int = 7 * 86400) -> None:
        self.redis = client
        self.retain = retain
        self.request_ttl_s = request_ttl_s
        self._store = client.register_script(_STORE_LUA)

    def store_many(self, events: Iterable[ScanResultEvent]) -> list[bool]:
        """Store each event once; returns, per event, whether this call stored it (False: a duplicate)."""
        pipe = self.redis.pipeline(transaction=False)
        now_iso, now_ts = utcnow_iso(), time.time()
        for event in events:
            action = event.action.requested if event.action.applied else ""
            self._store(
                keys=[
                    keys.RESULTS,
                    keys.RESULTS_INDEX,
                    keys.RESULTS_SEQ,
                    keys.STATS,
                    keys.job(event.job_id),
                    keys.results_by("verdict", event.verdict),
                    keys.results_by("connector", event.connector.uuid),
                    keys.results_by("job", event.job_id),
                    keys.request_state(event.scan_request_id),
                ],
                args=[
                    event.scan_request_id,
                    event.model_dump_json(exclude_none=False),
                    event.verdict,
                    event.file_info.size_in_bytes,
                    "1" if event.error else "0",
                    action,
                    self.retain,
                    now_iso,
                    now_ts,
                ],
                client=pipe,
            )
        return [bool(r) for r in pipe.execute()]

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
