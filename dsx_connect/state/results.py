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
import redis.asyncio as aredis

from dsx_connect import keys
from dsx_connect.jobs.done import done_bit
from dsx_connect.results.rows import encode_event
from dsx_connect.state.feed import FEED_PUSH_LUA, FeedTarget
from dsx_connect.state.job_scripts import COMPLETE_CHECK_LUA, DONE_FITS_LUA
from dsx_connect.state.scripts import lua
from shared.models import ScanResultEvent, Verdict, utcnow_iso

log = logging.getLogger(__name__)


VERDICTS = [v.value for v in Verdict]  # each has an index the store script writes and trims
# dsx_connect/state/lua/
_STORE_LUA = COMPLETE_CHECK_LUA + DONE_FITS_LUA + FEED_PUSH_LUA + lua("results_store")
_OUTBOX_TRIM_LUA = lua("outbox_trim")
_OUTBOX_PARK_LUA = lua("outbox_park")
_HOLDER_LUA = lua("scheduler_lease")  # renew (ms) or release (0) a lock, only for its holder


class ResultStore:
    def __init__(
        self,
        client: redis.Redis,
        retain: int,
        request_ttl_s: int = 7 * 86400,
        feed: FeedTarget | None = None,
        searched: bool = True,
    ) -> None:
        self.redis = client
        self.retain = retain
        self.request_ttl_s = request_ttl_s
        self.feed = feed  # the SIEM feed's queues, filled in the same call as the store
        # whether searches read this store: its verdict, connector and job indexes are kept. Beside a
        # SQL history, which answers every search, they are not (a sorted-set entry less per result
        # in each, a fifth of the store's Redis time and ~200 bytes a retained result)
        self.searched = searched
        self._store = client.register_script(_STORE_LUA)

    def store_many(
        self,
        events: Sequence[ScanResultEvent | dict[str, Any]],
        job_item_ids: Sequence[str | None] = (),
        *,
        encoded: Sequence[str] = (),
        accepting: bool = False,
    ) -> list[bool]:
        """Store each event once; returns, per event, whether this call stored it (False: a duplicate).

        ``job_item_ids`` (per event, in order; none by default) let each stored request's tombstone
        be one bit in its job's done bitmap instead of a key (``dsx_connect.jobs.done``).

        Events come as models or as their JSON dicts (the result step builds dicts, see
        ``ItemOutcome.event_dict``). A stored result that records a failure (scan error, failed
        action) is replaced by a later outcome of the same request (a requeued dead letter), its
        counts moved to the new verdict.

        ``encoded``: the events' stored text, when the caller has it (``encode_event``).
        ``accepting``: the items were never recorded as accepted (the intake serving unchanged items):
        each one stored for the first time is also counted as accepted, in the same atomic step.
        """
        if not events:
            return []
        feed_bound = self.feed.bound if self.feed else 0
        script_keys = [
            keys.RESULTS, keys.RESULTS_INDEX, keys.RESULTS_SEQ, keys.STATS,
            keys.DEAD_LETTERS, keys.DEAD_LETTERS_INDEX, keys.DEAD_LETTERS_REQUEUED,
        ]  # fmt: skip
        script_keys += [keys.results_by("verdict", v) for v in VERDICTS]
        # A batch's items share a few jobs and connectors: their keys go once per (job, connector)
        # group, and each item names its group (a third of the arguments of one set per item).
        groups: dict[tuple[str, str], int] = {}
        group_keys: list[str] = []
        request_keys: list[str] = []
        item_args: list[str] = []
        bits = [done_bit(item) for item in job_item_ids] or [0] * len(events)
        texts: list[str | None] = list(encoded) or [None] * len(events)
        for event, bit, text in zip(events, bits, texts, strict=True):
            data = event if isinstance(event, dict) else event.model_dump(mode="json")
            action = data["action"]
            job_id, request_id, connector = data["job_id"], data["scan_request_id"], data["connector"]["uuid"]
            group = groups.get((job_id, connector))
            if group is None:
                group = groups[(job_id, connector)] = len(groups)
                group_keys += [
                    keys.job(job_id), keys.job_pending(job_id), keys.job_due(job_id),
                    keys.results_by("connector", connector), keys.results_by("job", job_id),
                    keys.job_done(job_id), keys.job_skipped(job_id),
                ]  # fmt: skip
            request_keys.append(keys.request_state(request_id))
            cached = bool((data.get("scanner") or {}).get("cached"))
            item_args += [
                request_id,
                text if text is not None else encode_event(data),
                # results_store.lua splits it: group, verdict, bytes, failed, action, cached, done bit
                f"{group}\t{data['verdict']}\t{0 if cached else data['file_info']['size_in_bytes']}"
                f"\t{'1' if data.get('error') else '0'}\t{action['requested'] if action['applied'] else ''}"
                f"\t{'1' if cached else '0'}\t{bit}",
            ]
        args: list[str | int | float] = [
            self.retain, utcnow_iso(), time.time(), feed_bound, self.request_ttl_s, "1" if accepting else "0",
            "1" if self.searched else "0", len(VERDICTS), *VERDICTS, len(groups), len(events), *item_args,
        ]  # fmt: skip
        script_keys += group_keys + request_keys
        stored, dropped = self._store(keys=script_keys + (self.feed.keys if self.feed else []), args=args)
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


# ---- async readers (the SSE streams) ------------------------------------------------------------


async def async_result_seq(client: aredis.Redis) -> int:
    """The sequence number of the newest stored result (0 when none)."""
    return int(await client.get(keys.RESULTS_SEQ) or 0)


async def async_results_after(client: aredis.Redis, last: int, page: int) -> list[tuple[int, str | None]]:
    """(sequence, stored event JSON) of up to ``page`` results after sequence ``last``, oldest first;
    None where retention trimmed the event between the two reads."""
    rows = await client.zrangebyscore(
        keys.RESULTS_INDEX, f"({last}", "+inf", start=0, num=page, withscores=True
    )
    if not rows:
        return []
    raws = await client.hmget(keys.RESULTS, [request_id for request_id, _ in rows])
    return [(int(score), raw) for (_, score), raw in zip(rows, raws, strict=True)]


# ---- the SQL history's outbox and maintenance lock ----------------------------------------------

HISTORY_OUTBOX = keys.HISTORY_OUTBOX  # list of event JSON the history has not taken yet
HISTORY_LOCK = keys.HISTORY_LOCK


def outbox_park(client: redis.Redis, raws: Sequence[str], most: int | None = None) -> int:
    """Append events (JSON text) the SQL history could not take now, while the outbox holds fewer
    than ``most``; how many did not fit (0 without a bound)."""
    if most is None:
        client.rpush(HISTORY_OUTBOX, *raws)
        return 0
    return int(client.eval(_OUTBOX_PARK_LUA, 1, HISTORY_OUTBOX, most, *raws))


def outbox_peek(client: redis.Redis, n: int) -> list[str]:
    """The oldest ``n`` parked events, left in place."""
    raws: list[str] = client.lrange(HISTORY_OUTBOX, 0, n - 1)
    return raws


def outbox_drop(client: redis.Redis, n: int, lock: tuple[str, int] | None = None) -> bool:
    """Remove the oldest ``n`` parked events (once written); False, removing nothing, when ``lock``
    (the maintenance round's token and TTL) no longer holds the lock. Held, the lock is extended."""
    if lock is None:
        client.ltrim(HISTORY_OUTBOX, n, -1)
        return True
    token, ttl_s = lock
    return bool(client.eval(_OUTBOX_TRIM_LUA, 2, HISTORY_OUTBOX, HISTORY_LOCK, token, n, ttl_s))


def take_history_lock(client: redis.Redis, token: str, ttl_s: int) -> bool:
    """Take the maintenance lock for ``token`` unless another holds it."""
    return bool(client.set(HISTORY_LOCK, token, nx=True, ex=ttl_s))


def renew_history_lock(client: redis.Redis, token: str, ttl_s: int) -> bool:
    """Give the maintenance lock ``ttl_s`` more if ``token`` still holds it; whether it does."""
    return bool(client.eval(_HOLDER_LUA, 1, HISTORY_LOCK, token, ttl_s * 1000))


def release_history_lock(client: redis.Redis, token: str) -> None:
    """Release the maintenance lock if ``token`` still holds it (one step: a lock that expired and
    was taken by another replica meanwhile stays theirs)."""
    client.eval(_HOLDER_LUA, 1, HISTORY_LOCK, token, 0)
