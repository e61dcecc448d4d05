"""Requeued dead letters, each with a lease, so that a requeued item is never forgotten.

``POST /dlq/requeue`` gives each letter a lease (``DSXCONNECT_JOBS__REDISPATCH_AFTER_S``) and sends
its payload back to its stage; the letter stays in the store, marked requeued, until the attempt
ends: the result store deletes it with the item's outcome, or a new failure replaces it. A letter
whose lease passed with neither (its message was lost: a worker killed between taking and
acknowledging it, a Redis crash) is sent again by the API's sweep, as the pending items of a job
are (``jobs.recovery``). Steps are idempotent per request id, so a slow attempt sent twice costs a
second scan, never a second result or action.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any

from dsx_connect.state.dead_letters import DeadLetter, DeadLetterStore, Stage

log = logging.getLogger(__name__)

Send = Callable[[Stage, list[dict[str, Any]]], None]  # a stage's payloads onto its queue, batched
PER_SWEEP = 5000


def send_letters(letters: list[DeadLetter], send: Send) -> dict[Stage, int]:
    """Send each letter's payload to its stage; returns how many per stage."""
    sent: dict[Stage, int] = {"scan": 0, "action": 0, "result": 0}
    for stage in sent:
        payloads = [letter.payload for letter in letters if letter.stage == stage]
        if payloads:
            send(stage, payloads)
            sent[stage] = len(payloads)
    return sent


def requeue_letters(
    store: DeadLetterStore, letters: list[DeadLetter], lease_s: float, send: Send
) -> tuple[dict[Stage, int], list[DeadLetter]]:
    """Lease the letters, then send them: a crash in between leaves leased letters the sweep sends.
    Returns how many went per stage, and the letters left alone: already requeued, not finished."""
    leased = store.mark_requeued(letters, time.time() + lease_s)
    taken = {letter.id for letter in leased}
    return send_letters(leased, send), [letter for letter in letters if letter.id not in taken]


def redispatch_expired_requeues(
    store: DeadLetterStore, lease_s: float, send: Send, now: float | None = None
) -> int:
    """Send again the requeued letters whose lease passed; returns how many."""
    now = time.time() if now is None else now
    letters = store.claim_expired_requeues(now, now + lease_s, PER_SWEEP)
    if letters:
        send_letters(letters, send)
        log.warning(
            "sent again %d requeued dead letters no attempt finished within %.0f s", len(letters), lease_s
        )
    return len(letters)
