"""Dead letters: list, requeue and clear what ran out of retries (also under ``/admin/dead-letter``)."""

from __future__ import annotations

from collections import Counter
from typing import Annotated, Any

from fastapi import APIRouter, Depends, HTTPException, Query, Request
from pydantic import BaseModel, ConfigDict, Field, StrictBool, model_validator

from dsx_connect.api.answers import Cleared, DeadLetterPage, DeadLetterStats, Requeued
from dsx_connect.api.deps import SettingsDep, send_to_stage
from dsx_connect.jobs.requeue import requeue_letters
from dsx_connect.redis_client import get_redis
from dsx_connect.state.dead_letters import CHUNK, DeadLetterStore


def get_dead_letters(settings: SettingsDep) -> DeadLetterStore:
    return DeadLetterStore(get_redis(), settings.dlq.retain_s)


DeadLettersDep = Annotated[DeadLetterStore, Depends(get_dead_letters)]


class Requeue(BaseModel):
    """Either ``all: true`` or the ``ids`` to requeue."""

    model_config = ConfigDict(extra="forbid")

    ids: list[str] | None = Field(default=None, max_length=10_000)
    all: StrictBool = False

    @model_validator(mode="after")
    def _one_of(self) -> Requeue:
        if self.all and self.ids:
            raise ValueError("give `ids` or `all: true`, not both")
        if not self.all and not self.ids:
            raise ValueError("give `ids` (a non-empty list) or `all: true`")
        return self


def known_query(*names: str) -> Any:
    """422 for a query parameter the route does not take: on a route that deletes, a misspelt
    filter (``?ids=…`` for ``?id=…``) must not read as "no filter"."""

    def check(request: Request) -> None:
        unknown = sorted(set(request.query_params) - set(names))
        if unknown:
            raise HTTPException(
                422, f"unknown query parameter(s) {', '.join(unknown)}; this route takes {', '.join(names)}"
            )

    return Depends(check)


def dlq_router() -> APIRouter:
    router = APIRouter(tags=["dead letters"])

    @router.get("/stats")
    def dead_letter_stats(dead_letters: DeadLettersDep) -> DeadLetterStats:
        """How many items ran out of retries, by stage."""
        return DeadLetterStats.model_validate(dead_letters.stats())

    @router.get("/items")
    def list_dead_letters(
        dead_letters: DeadLettersDep,
        limit: Annotated[int, Query(ge=1, le=1000)] = 50,
        offset: Annotated[int, Query(ge=0, le=1_000_000)] = 0,  # Redis takes 64-bit offsets only
        cursor: Annotated[
            str | None,
            Query(max_length=200, pattern=r"^[0-9.e+-]+:.+$", description="`next_cursor` of the page before"),
        ] = None,
    ) -> DeadLetterPage:
        """Dead letters, newest first, with their reason. Follow ``next_cursor`` for the next page:
        pages by ``offset`` shift (and repeat letters) while new letters arrive."""
        if cursor is not None and offset:
            raise HTTPException(422, "give `cursor` or `offset`, not both")
        total = dead_letters.count()
        if cursor is None and offset:
            items, _ = dead_letters.items(offset, limit)
            return DeadLetterPage(items=items, total=total, limit=limit, offset=offset)
        try:
            items, after = dead_letters.page_after(cursor, limit)
        except ValueError:
            raise HTTPException(
                422, f"cursor {cursor!r} is not one this API returned (next_cursor)"
            ) from None
        return DeadLetterPage(items=items, total=total, limit=limit, offset=0, next_cursor=after)

    @router.post("/requeue")
    def requeue_dead_letters(body: Requeue, dead_letters: DeadLettersDep, settings: SettingsDep) -> Requeued:
        """Send dead letters back through the pipeline with fresh retries; they finish normally.

        Each letter stays, marked requeued with a lease, until its attempt stores an outcome (the
        letter goes) or fails anew (a new letter); a lease that passes sends it again. A letter
        already requeued and not finished is not sent twice (``already_requeued``).
        """
        wanted = dead_letters.ids() if body.all else list(dict.fromkeys(body.ids or []))
        sent: Counter[str] = Counter()
        found: set[str] = set()
        busy: list[str] = []
        for start in range(0, len(wanted), CHUNK):  # a chunk in memory at a time, however many
            taken = dead_letters.peek(wanted[start : start + CHUNK])
            went, left = requeue_letters(dead_letters, taken, settings.jobs.redispatch_after_s, send_to_stage)
            sent.update(went)
            found.update(letter.id for letter in taken)
            busy += [letter.id for letter in left]
        return Requeued(
            requeued=len(found) - len(busy),
            scan=sent["scan"],
            action=sent["action"],
            result=sent["result"],
            not_found=[] if body.all else sorted(set(wanted) - found),
            already_requeued=sorted(busy),
        )

    @router.delete("", dependencies=[known_query("id", "all")])
    def clear_dead_letters(
        dead_letters: DeadLettersDep,
        id: Annotated[list[str] | None, Query(max_length=1000)] = None,
        all: Annotated[bool, Query(description="`true` deletes every dead letter")] = False,
    ) -> Cleared:
        """Delete dead letters: those named by ``id`` (repeatable), or all of them with ``all=true``."""
        if bool(id) == all:
            raise HTTPException(422, "give `id` (repeatable) or `all=true`, not both and not neither")
        return Cleared(cleared=dead_letters.clear(None if all else id))

    return router
