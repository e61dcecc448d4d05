"""The producer side: the notification step hands each batch's events to the webhooks that want them."""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence

import redis

from dsx_connect.notifications.config import NotificationsSettings
from dsx_connect.state.feed import FeedProducer

log = logging.getLogger(__name__)


class WebhookFanout:
    """One bounded buffer per webhook (the SIEM feed's ``FeedProducer``), filled by verdict filter."""

    def __init__(self, client: redis.Redis, settings: NotificationsSettings) -> None:
        self.hooks = [
            (hook, FeedProducer(client, [hook.destination], settings.buffer_max_events))
            for hook in settings.webhooks
        ]

    def publish(self, events: Sequence[str]) -> int:
        """Queue ``events`` (JSON text) for every webhook that wants them; returns how many were queued."""
        if not self.hooks or not events:
            return 0
        verdicts = [_verdict(event) for event in events]
        queued = 0
        for hook, producer in self.hooks:
            wanted = [e for e, v in zip(events, verdicts, strict=True) if hook.wants(v)]
            if wanted:
                dropped = producer.enqueue(wanted).get(hook.destination, 0)
                queued += len(wanted)
                if dropped:
                    log.warning("webhook %s: buffer full, %d oldest events dropped", hook.shown_url, dropped)
        return queued


def _verdict(event: str) -> str | None:
    try:
        value = json.loads(event).get("verdict")
    except (ValueError, AttributeError):
        return None
    return value if isinstance(value, str) else None


_fanouts: dict[tuple[int, int], WebhookFanout] = {}


def fanout_for(client: redis.Redis, settings: NotificationsSettings) -> WebhookFanout:
    """The process's fanout for this client and these settings (both live as long as the process)."""
    key = (id(client), id(settings))
    if key not in _fanouts:
        _fanouts[key] = WebhookFanout(client, settings)
    return _fanouts[key]
