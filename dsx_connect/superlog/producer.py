"""The result step's one call: hand the newly stored events to the feed (one Redis round trip per batch)."""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence

import redis

from dsx_connect.settings import Settings
from dsx_connect.superlog.buffer import FeedProducer
from shared.models import ScanResultEvent

log = logging.getLogger(__name__)

_producers: dict[tuple[int, int, tuple[str, ...], int], FeedProducer] = {}


def producer_for(settings: Settings, client: redis.Redis) -> FeedProducer | None:
    """This process's producer for the active destinations and ``client`` (None when the feed is off)."""
    active = tuple(settings.superlog.active)
    if not active:
        return None
    key = (os.getpid(), id(client), active, settings.superlog.buffer_max_events)
    if key not in _producers:
        _producers[key] = FeedProducer(client, active, settings.superlog.buffer_max_events)
    return _producers[key]


def feed_new_results(settings: Settings, client: redis.Redis, events: Sequence[ScanResultEvent]) -> None:
    """Push ``events`` (stored for the first time) onto the buffer of every active destination.

    Never fails the scan: a Redis error here is logged and the events are missing from the feed (the
    results themselves are stored). A full buffer drops its oldest events, counted per destination.
    """
    producer = producer_for(settings, client)
    if producer is None or not events:
        return
    try:
        dropped = producer.enqueue([event.model_dump_json() for event in events])
    except redis.RedisError as exc:
        log.error("superlog: %d events not queued for the feed: %s", len(events), exc)
        return
    if any(dropped.values()):
        log.warning("superlog: buffers full, oldest events dropped: %s", dropped)
