"""Dead letters under the DSX-Connect 1.x paths and answer shapes (``/admin/dead-letter/…``).

1.x kept one Redis list per queue type (``scan_request``, ``verdict_action``, ``scan_result``); this core
keeps one store whose letters carry a stage (``scan``, ``action``). These routes present the store as
1.x did, so a 1.x operator's scripts and dashboards keep working: ``stats/{queue_type}``, ``clear``
(POST, or DELETE as later 1.x releases use), ``clear/{queue_type}`` and ``health``. ``scan_result``
holds the result step's letters: outcomes whose storing failed past its retries.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any, Literal

from fastapi import APIRouter, Depends, HTTPException, Request
from pydantic import BaseModel

from dsx_connect import keys
from dsx_connect.api.dlq import DeadLettersDep
from dsx_connect.state.dead_letters import DeadLetter, DeadLetterStore, Stage

SAMPLE_SIZE = 5  # 1.x shows up to five letters of one queue


class QueueType(StrEnum):
    """The 1.x dead-letter queues."""

    SCAN_REQUEST = "scan_request"
    VERDICT_ACTION = "verdict_action"
    SCAN_RESULT = "scan_result"


STAGE_OF: dict[QueueType, Stage] = {
    QueueType.SCAN_REQUEST: "scan",
    QueueType.VERDICT_ACTION: "action",
    QueueType.SCAN_RESULT: "result",
}


def queue_name(queue_type: QueueType) -> str:
    """What 1.x called the queue's Redis key; here a name for the letters of one stage."""
    return f"{keys.DEAD_LETTERS}:{queue_type.value}"


class QueueStats(BaseModel):
    """1.x ``QueueStatsResponse``."""

    queue_name: str
    queue_type: str
    length: int
    ttl_seconds: int
    exists: bool
    sample_items: list[dict[str, Any]] | None = None


class ClearedQueue(BaseModel):
    """1.x ``ClearQueueResponse``."""

    success: bool
    queue_type: str
    queue_name: str
    cleared_count: int


def item_1x(letter: DeadLetter) -> dict[str, Any]:
    """One dead letter as a 1.x ``DeadLetterItem``."""
    failed = datetime.fromisoformat(letter.failed_at.replace("Z", "+00:00"))
    payload = letter.payload
    return {
        "scan_request": {
            "location": letter.location,
            "metainfo": payload.get("metainfo") or letter.location,
            "connector": {"uuid": letter.connector_uuid, "name": payload.get("connector_name") or None},
            "size_in_bytes": payload.get("size_in_bytes"),
            "scan_job_id": letter.job_id,
        },
        "failure_reason": letter.reason,
        "error_details": letter.reason,
        "failed_at": failed.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S UTC"),
        "failed_at_timestamp": failed.timestamp(),
        "original_task_id": letter.id,
        "retry_count": letter.attempts,
    }


def _ttl(letters: list[DeadLetter], retain_s: int) -> int:
    """As a Redis TTL: -2 when the queue is empty, else the seconds until its newest letter expires."""
    if not letters:
        return -2
    newest = datetime.fromisoformat(letters[0].failed_at.replace("Z", "+00:00")).timestamp()
    return max(0, int(newest + retain_s - time.time()))


def _clear(store: DeadLetterStore, queue_type: QueueType) -> ClearedQueue:
    ids = store.ids(STAGE_OF[queue_type])
    cleared = store.clear(ids) if ids else 0
    return ClearedQueue(
        success=True, queue_type=queue_type.value, queue_name=queue_name(queue_type), cleared_count=cleared
    )


router = APIRouter(tags=["dead letters (1.x)"])


@router.get("/stats/{queue_type}")
def dead_letter_queue_stats(queue_type: QueueType, dead_letters: DeadLettersDep) -> QueueStats:
    """One 1.x dead-letter queue: its length, time to live and up to five of its letters."""
    letters, length = dead_letters.items(0, SAMPLE_SIZE, stage=STAGE_OF[queue_type])  # the newest
    return QueueStats(
        queue_name=queue_name(queue_type),
        queue_type=queue_type.value,
        length=length,
        ttl_seconds=_ttl(letters, dead_letters.retain_s),
        exists=length > 0,
        sample_items=[item_1x(letter) for letter in letters] or None,
    )


def _no_query(request: Request) -> None:
    """422 for any query parameter: the clear routes take none, and a filter a caller adds (``?id=…``,
    as the main ``DELETE …/dead-letter`` takes) must not read as "no filter" and delete every letter
    (``known_query`` of ``dsx_connect.api.dlq``, for routes that take no parameter)."""
    if request.query_params:
        unknown = ", ".join(sorted(set(request.query_params)))
        raise HTTPException(422, f"unknown query parameter(s) {unknown}; this route takes none")


NO_QUERY = Depends(_no_query)


@router.api_route("/clear", methods=["POST", "DELETE"], dependencies=[NO_QUERY])
def clear_dead_letter_queues(dead_letters: DeadLettersDep) -> list[ClearedQueue]:
    """Delete every dead letter; one entry per 1.x queue type."""
    return [_clear(dead_letters, queue_type) for queue_type in QueueType]


@router.api_route("/clear/{queue_type}", methods=["POST", "DELETE"], dependencies=[NO_QUERY])
def clear_dead_letter_queue(queue_type: QueueType, dead_letters: DeadLettersDep) -> ClearedQueue:
    """Delete the dead letters of one 1.x queue type."""
    return _clear(dead_letters, queue_type)


class DeadLetterHealth(BaseModel):
    """``GET …/dead-letter/health`` in the 1.x shape."""

    status: Literal["healthy", "unhealthy"]
    redis_connected: bool
    total_dead_letter_items: int
    available_queues: list[str]


@router.get("/health")
def dead_letter_health(dead_letters: DeadLettersDep) -> DeadLetterHealth:
    """Whether the dead-letter store is reachable, and how many letters it holds (1.x shape)."""
    queues = [q.value for q in QueueType]
    try:
        dead_letters.ping()
        total = int(dead_letters.stats()["count"])
    except Exception:  # any Redis failure means "unhealthy", as 1.x answers it
        return DeadLetterHealth(
            status="unhealthy", redis_connected=False, total_dead_letter_items=0, available_queues=queues
        )
    return DeadLetterHealth(
        status="healthy", redis_connected=True, total_dead_letter_items=total, available_queues=queues
    )
