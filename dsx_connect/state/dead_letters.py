"""Dead letters: items that ran out of retries, kept with their reason until requeued or cleared.

A scan that kept failing on a transient error (connector or scanner unreachable past every retry),
a verdict action that kept failing, and every item of a task that raised an unexpected error (or
exhausted its task-level retries on Redis trouble) land here, with the reason. Scan and action
letters also have their (failed) result, so the job's counts stay exact; a requeued item that then
succeeds replaces that failed result. A ``result`` letter is an outcome whose storing failed: it has
no result yet, and requeueing stores it.

A requeued letter stays, with a lease in ``keys.DEAD_LETTERS_REQUEUED``, until its attempt ends: the
result store deletes it when it stores the item's outcome, a new failure replaces it (and ends the
lease), and a lease that passes sends it again (``dsx_connect.jobs.requeue``). A requeued item whose
message is lost is therefore sent again, never forgotten.
"""

from __future__ import annotations

import json
import time
from collections import Counter
from typing import Any, Literal

import redis
from pydantic import BaseModel, Field

from dsx_connect import keys
from dsx_connect.metrics.instruments import DEAD_LETTERS, reason_class
from dsx_connect.state.scripts import lua
from shared.models import utcnow_iso

_REMOVE_LUA = lua("dlq_remove")  # dsx_connect/state/lua/dlq_remove.lua
_CLAIM_LUA = lua("claim_expired")  # the jobs' lease claim, on the letters and their leases

Stage = Literal["scan", "action", "result"]


class DeadLetter(BaseModel):
    id: str = Field(description="the scan request id")
    stage: Stage
    reason: str
    attempts: int
    job_id: str
    connector_uuid: str
    location: str
    failed_at: str = Field(default_factory=utcnow_iso)
    payload: dict[str, Any] = Field(description="what requeueing sends again: a scan task or an item outcome")
    requeued_until: float | None = Field(
        default=None,
        description="requeued and not finished yet: when its lease passes (Unix time) and it is sent again",
    )


class DeadLetterStore:
    def __init__(self, client: redis.Redis, retain_s: int) -> None:
        self.redis = client
        self.retain_s = retain_s
        self._remove = client.register_script(_REMOVE_LUA)
        self._claim = client.register_script(_CLAIM_LUA)

    def add_many(self, letters: list[DeadLetter]) -> None:
        if not letters:
            return
        now = time.time()
        pipe = self.redis.pipeline(transaction=False)
        for letter in letters:
            pipe.hset(keys.DEAD_LETTERS, letter.id, letter.model_dump_json(exclude={"requeued_until"}))
            pipe.zadd(keys.DEAD_LETTERS_INDEX, {letter.id: now})
            pipe.zrem(keys.DEAD_LETTERS_REQUEUED, letter.id)  # failed anew: the requeued attempt ended
        pipe.execute()
        for (stage, reason), count in Counter((x.stage, reason_class(x.reason)) for x in letters).items():
            DEAD_LETTERS.labels(stage, reason).inc(count)
        self.expire()

    def ping(self) -> None:
        """Raise if Redis does not answer."""
        self.redis.ping()

    def expire(self) -> int:
        """Drop dead letters older than the retention; returns how many."""
        cutoff = time.time() - self.retain_s
        old = self.redis.zrangebyscore(keys.DEAD_LETTERS_INDEX, "-inf", cutoff)
        if old:
            pipe = self.redis.pipeline()
            pipe.hdel(keys.DEAD_LETTERS, *old)
            pipe.zrem(keys.DEAD_LETTERS_INDEX, *old)
            pipe.zrem(keys.DEAD_LETTERS_REQUEUED, *old)
            pipe.execute()
        return len(old)

    def stats(self) -> dict[str, Any]:
        self.expire()
        letters = self._all()
        by_stage: dict[str, int] = {"scan": 0, "action": 0, "result": 0}
        for letter in letters:
            by_stage[letter.stage] = by_stage.get(letter.stage, 0) + 1
        times = sorted(letter.failed_at for letter in letters)
        return {
            "count": len(letters),
            "by_stage": by_stage,
            "oldest": times[0] if times else None,
            "newest": times[-1] if times else None,
            "retain_s": self.retain_s,
            "requeued": int(self.redis.zcard(keys.DEAD_LETTERS_REQUEUED)),
        }

    def items(self, offset: int = 0, limit: int = 50) -> tuple[list[DeadLetter], int]:
        """Newest first, and how many there are."""
        self.expire()
        ids = self.redis.zrevrange(keys.DEAD_LETTERS_INDEX, offset, offset + limit - 1)
        return self._load(ids), int(self.redis.zcard(keys.DEAD_LETTERS_INDEX))

    def peek(self, ids: list[str] | None = None) -> list[DeadLetter]:
        """The named dead letters (all when ``ids`` is None), left in place.

        Requeueing reads them, gives each a lease (:meth:`mark_requeued`) and publishes them; they stay
        until their attempt ends (see the module's docstring).
        """
        if ids is None:
            ids = self.redis.zrange(keys.DEAD_LETTERS_INDEX, 0, -1)
        return self._load(ids)

    def _load(self, ids: list[str]) -> list[DeadLetter]:
        if not ids:
            return []
        pipe = self.redis.pipeline(transaction=False)
        pipe.hmget(keys.DEAD_LETTERS, ids)
        pipe.zmscore(keys.DEAD_LETTERS_REQUEUED, ids)
        raws, leases = pipe.execute()
        return [
            DeadLetter.model_validate_json(raw).model_copy(update={"requeued_until": lease})
            for raw, lease in zip(raws, leases, strict=True)
            if raw
        ]

    def mark_requeued(self, letters: list[DeadLetter], until: float) -> list[DeadLetter]:
        """Lease these letters until ``until`` (Unix time) to send them again; returns those leased
        now. One already leased (requeued by another call, not finished yet) is left to that lease:
        two requeues at once (a double click, two operators) would send two copies."""
        if not letters:
            return []
        pipe = self.redis.pipeline(transaction=False)
        for letter in letters:
            pipe.zadd(keys.DEAD_LETTERS_REQUEUED, {letter.id: until}, nx=True)
        return [letter for letter, added in zip(letters, pipe.execute(), strict=True) if added]

    def hold_requeues(self, ids: list[str], until: float) -> None:
        """Requeued letters among ``ids`` are held by a step (a paused job's items wait): their leases
        run to ``until``, so the sweep does not send another copy of each every lease."""
        if ids:
            self.redis.zadd(keys.DEAD_LETTERS_REQUEUED, dict.fromkeys(ids, until), xx=True)

    def end_requeues(self, ids: list[str]) -> None:
        """The requeued attempts of ``ids`` ended without an outcome (a cancelled job skipped them):
        the letters stay, no longer requeued, instead of being sent again every lease."""
        if ids:
            self.redis.zrem(keys.DEAD_LETTERS_REQUEUED, *ids)

    def claim_expired_requeues(self, now: float, until: float, limit: int = 5000) -> list[DeadLetter]:
        """Requeued letters whose lease passed with no outcome stored, their leases renewed to ``until``
        (replicas sweeping at once get each once); a lease whose letter is gone is dropped."""
        raws = self._claim(keys=[keys.DEAD_LETTERS, keys.DEAD_LETTERS_REQUEUED], args=[now, until, limit])
        return [DeadLetter.model_validate_json(raw) for raw in raws]

    def remove(self, letters: list[DeadLetter]) -> int:
        """Delete exactly these letters: one that failed again in between (a newer letter under the
        same id, written by the requeued attempt) is kept. Returns how many went."""
        if not letters:
            return 0
        return int(
            self._remove(keys=[keys.DEAD_LETTERS, keys.DEAD_LETTERS_INDEX, keys.DEAD_LETTERS_REQUEUED], args=[
                x for letter in letters for x in (letter.id, letter.failed_at)
            ])
        )  # fmt: skip

    def clear(self, ids: list[str] | None = None) -> int:
        """Delete the named dead letters (all when ``ids`` is None); returns how many went."""
        return self.remove(self.peek(ids))

    def _all(self) -> list[DeadLetter]:
        return [DeadLetter.model_validate(json.loads(raw)) for raw in self.redis.hvals(keys.DEAD_LETTERS)]
