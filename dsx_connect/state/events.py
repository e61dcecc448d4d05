"""The core's pub/sub events: new results and job summaries (the SSE streams' sources, SPEC §10)."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from typing import Any

import redis
import redis.asyncio as aredis

from dsx_connect import keys


def publish_results(client: redis.Redis, events: Sequence[str]) -> int:
    """Publish stored result events (their JSON text, as stored) in one round trip; returns how many."""
    pipe = client.pipeline(transaction=False)
    for event in events:
        pipe.publish(keys.CHANNEL_SCAN_RESULT, event)
    pipe.execute()
    return len(events)


def publish_job(client: redis.Redis, job_id: str, view: dict[str, Any]) -> None:
    """Publish a job's summary on its channel."""
    client.publish(keys.channel_job(job_id), json.dumps(view))


class EventSubscription:
    """The core's channels on one pub/sub connection: results, connectors and every job's."""

    def __init__(self, pubsub: Any) -> None:
        self._pubsub = pubsub

    async def next(self, timeout: float) -> dict[str, Any] | None:
        """The next message (``channel``, ``pattern``, ``data``), or None after ``timeout`` seconds."""
        message: dict[str, Any] | None = await self._pubsub.get_message(
            ignore_subscribe_messages=True, timeout=timeout
        )
        return message


@asynccontextmanager
async def subscribe_events(client: aredis.Redis) -> AsyncIterator[EventSubscription]:
    """Subscribed to every channel once this yields (confirmations read: no later message is missed)."""
    async with client.pubsub() as pubsub:
        await pubsub.subscribe(keys.CHANNEL_SCAN_RESULT, keys.CHANNEL_CONNECTORS)
        await pubsub.psubscribe(keys.CHANNEL_JOBS_PATTERN)
        for _ in range(3):
            await pubsub.get_message(timeout=5.0)
        yield EventSubscription(pubsub)
