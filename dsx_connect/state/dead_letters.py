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
CHUNK = 1000  # letters read, removed or sent per call in bulk operations


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
            for stage in keys.DEAD_LETTER_STAGES:  # (a letter written anew may change stage)
                if stage == letter.stage:
                    pipe.zadd(keys.dead_letters_of(stage), {letter.id: now})
                else:
                    pipe.zrem(keys.dead_letters_of(stage), letter.id)
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
        for start in range(0, len(old), CHUNK):
            part = old[start : start + CHUNK]
            pipe = self.redis.pipeline()
            pipe.hdel(keys.DEAD_LETTERS, *part)
            for index in self._indexes():
                pipe.zrem(index, *part)
            pipe.execute()
        return len(old)

    def stats(self) -> dict[str, Any]:
        """Counts by stage and the oldest and newest failure, from the indexes: a scrape or a health
        check costs the same for ten letters or a million."""
        self.expire()
        total, by_stage = self._counts()
        if sum(by_stage.values()) != total:  # letters written before the stage indexes existed
            self._reindex()
            total, by_stage = self._counts()
        ends = self.redis.zrange(keys.DEAD_LETTERS_INDEX, 0, 0) + self.redis.zrange(
            keys.DEAD_LETTERS_INDEX, -1, -1
        )
        times = [letter.failed_at for letter in self._load(ends)]
        return {
            "count": total,
            "by_stage": by_stage,
            "oldest": min(times) if times else None,
            "newest": max(times) if times else None,
            "retain_s": self.retain_s,
            "requeued": int(self.redis.zcard(keys.DEAD_LETTERS_REQUEUED)),
        }

    def _counts(self) -> tuple[int, dict[str, int]]:
        pipe = self.redis.pipeline(transaction=False)
        pipe.zcard(keys.DEAD_LETTERS_INDEX)
        for stage in keys.DEAD_LETTER_STAGES:
            pipe.zcard(keys.dead_letters_of(stage))
        total, *counts = pipe.execute()
        return int(total), dict(zip(keys.DEAD_LETTER_STAGES, map(int, counts), strict=True))

    def _reindex(self) -> None:
        """Rebuild the stage indexes from the letters (once, after an upgrade), a page at a time."""
        for stage in keys.DEAD_LETTER_STAGES:
            self.redis.delete(keys.dead_letters_of(stage))
        cursor = 0
        while True:
            cursor, page = self.redis.hscan(keys.DEAD_LETTERS, cursor, count=CHUNK)
            if page:
                ids = list(page)
                scores = self.redis.zmscore(keys.DEAD_LETTERS_INDEX, ids)
                pipe = self.redis.pipeline(transaction=False)
                for (letter_id, raw), score in zip(page.items(), scores, strict=True):
                    stage = json.loads(raw).get("stage")
                    if stage in keys.DEAD_LETTER_STAGES and score is not None:
                        pipe.zadd(keys.dead_letters_of(stage), {letter_id: score})
                pipe.execute()
            if not cursor:
                return

    def items(
        self, offset: int = 0, limit: int = 50, stage: Stage | None = None
    ) -> tuple[list[DeadLetter], int]:
        """Newest first (of one stage when given), and how many there are."""
        self.expire()
        index = keys.dead_letters_of(stage) if stage else keys.DEAD_LETTERS_INDEX
        ids = self.redis.zrevrange(index, offset, offset + limit - 1)
        return self._load(ids), int(self.redis.zcard(index))

    def count(self) -> int:
        """How many letters there are (after dropping those past the retention)."""
        self.expire()
        return int(self.redis.zcard(keys.DEAD_LETTERS_INDEX))

    def page_after(self, cursor: str | None, limit: int) -> tuple[list[DeadLetter], str | None]:
        """Newest first after ``cursor`` (``<score>:<id>`` of the last letter of the page before):
        letters arriving meanwhile neither shift nor repeat the pages. Returns the next cursor."""
        index = keys.DEAD_LETTERS_INDEX
        if cursor is None:
            found = self.redis.zrevrange(index, 0, limit, withscores=True)
        else:
            score_text, _, last = cursor.partition(":")
            score = float(score_text)
            # the letters of one batch share a time: those of the cursor's time after its id, then older
            ties = [m for m in reversed(self.redis.zrangebyscore(index, score, score)) if m < last]
            older = self.redis.zrevrangebyscore(
                index, f"({score!r}", "-inf", start=0, num=limit + 1, withscores=True
            )
            found = [(m, score) for m in ties][: limit + 1] + older
        found = found[: limit + 1]
        page, more = found[:limit], len(found) > limit
        after = f"{page[-1][1]!r}:{page[-1][0]}" if more and page else None
        return self._load([member for member, _ in page]), after

    def ids(self, stage: Stage | None = None) -> list[str]:
        """Every letter's id (of one stage when given), oldest first: a bulk operation's work list."""
        return list(
            self.redis.zrange(keys.dead_letters_of(stage) if stage else keys.DEAD_LETTERS_INDEX, 0, -1)
        )

    def _indexes(self) -> list[str]:
        return [keys.DEAD_LETTERS_INDEX, keys.DEAD_LETTERS_REQUEUED] + [
            keys.dead_letters_of(stage) for stage in keys.DEAD_LETTER_STAGES
        ]

    def peek(self, ids: list[str] | None = None) -> list[DeadLetter]:
        """The named dead letters (all when ``ids`` is None), left in place.

        Requeueing reads them, gives each a lease (:meth:`mark_requeued`) and publishes them; they stay
        until their attempt ends (see the module's docstring).
        """
        return self._load(self.ids() if ids is None else ids)

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
        removed = 0
        for start in range(0, len(letters), CHUNK):  # short scripts: Redis serves others in between
            part = letters[start : start + CHUNK]
            args = [x for letter in part for x in (letter.id, letter.failed_at)]
            removed += int(self._remove(keys=[keys.DEAD_LETTERS, *self._indexes()], args=args))
        return removed

    def clear(self, ids: list[str] | None = None) -> int:
        """Delete the named dead letters (all when ``ids`` is None), a chunk at a time; returns how
        many went."""
        wanted = self.ids() if ids is None else ids
        return sum(
            self.remove(self._load(wanted[start : start + CHUNK])) for start in range(0, len(wanted), CHUNK)
        )
