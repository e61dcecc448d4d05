"""Dead letters: items that ran out of retries, kept with their reason until requeued or cleared.

A scan that kept failing on a transient error (connector or scanner unreachable past every retry),
a verdict action that kept failing, and every item of a task that raised an unexpected error (or
exhausted its task-level retries on Redis trouble) land here, with the reason. Scan and action
letters also have their (failed) result, so the job's counts stay exact; a requeued item that then
succeeds replaces that failed result. A ``result`` letter is an outcome whose storing failed: it has
no result yet, and requeueing stores it.
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


class DeadLetterStore:
    def __init__(self, client: redis.Redis, retain_s: int) -> None:
        self.redis = client
        self.retain_s = retain_s
        self._remove = client.register_script(_REMOVE_LUA)

    def add_many(self, letters: list[DeadLetter]) -> None:
        if not letters:
            return
        now = time.time()
        pipe = self.redis.pipeline(transaction=False)
        for letter in letters:
            pipe.hset(keys.DEAD_LETTERS, letter.id, letter.model_dump_json())
            pipe.zadd(keys.DEAD_LETTERS_INDEX, {letter.id: now})
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
        }

    def items(self, offset: int = 0, limit: int = 50) -> tuple[list[DeadLetter], int]:
        """Newest first, and how many there are."""
        self.expire()
        ids = self.redis.zrevrange(keys.DEAD_LETTERS_INDEX, offset, offset + limit - 1)
        raws = self.redis.hmget(keys.DEAD_LETTERS, ids) if ids else []
        letters = [DeadLetter.model_validate_json(raw) for raw in raws if raw]
        return letters, int(self.redis.zcard(keys.DEAD_LETTERS_INDEX))

    def peek(self, ids: list[str] | None = None) -> list[DeadLetter]:
        """The named dead letters (all when ``ids`` is None), left in place.

        Requeueing reads them, publishes them, and only then remove them (:meth:`remove`): a crash in
        between sends an item twice (steps are idempotent per request id), never loses it.
        """
        if ids is None:
            ids = self.redis.zrange(keys.DEAD_LETTERS_INDEX, 0, -1)
        if not ids:
            return []
        raws = self.redis.hmget(keys.DEAD_LETTERS, ids)
        return [DeadLetter.model_validate_json(raw) for raw in raws if raw]

    def remove(self, letters: list[DeadLetter]) -> int:
        """Delete exactly these letters: one that failed again in between (a newer letter under the
        same id, written by the requeued attempt) is kept. Returns how many went."""
        if not letters:
            return 0
        return int(
            self._remove(keys=[keys.DEAD_LETTERS, keys.DEAD_LETTERS_INDEX], args=[
                x for letter in letters for x in (letter.id, letter.failed_at)
            ])
        )  # fmt: skip

    def clear(self, ids: list[str] | None = None) -> int:
        """Delete the named dead letters (all when ``ids`` is None); returns how many went."""
        return self.remove(self.peek(ids))

    def _all(self) -> list[DeadLetter]:
        return [DeadLetter.model_validate(json.loads(raw)) for raw in self.redis.hvals(keys.DEAD_LETTERS)]
