"""What operators see of the webhooks: ``/notifications/stats`` and ``/metrics`` lines."""

from __future__ import annotations

from typing import Any

import redis

from dsx_connect.notifications.config import NotificationsSettings
from dsx_connect.state.feed import destination_states
from dsx_connect.superlog.status import prometheus_lines


def webhook_stats(client: redis.Redis, settings: NotificationsSettings) -> dict[str, Any]:
    """Each webhook's URL (without its query), verdict filter, delivery state and counters."""
    states = destination_states(client, settings.destinations)
    return {
        "buffer_max_events": settings.buffer_max_events,
        "webhooks": [
            {
                "url": hook.shown_url,
                "verdicts": hook.verdicts,
                "id": hook.destination,
                **states[hook.destination],
            }
            for hook in settings.webhooks
        ],
    }


def webhook_metrics(client: redis.Redis, settings: NotificationsSettings) -> list[str]:
    """``dsxconnect_webhook_{sent,dropped,rejected}_total``, ``_backlog``, ``_up``, by ``webhook`` id."""
    if not settings.webhooks:
        return []
    states = destination_states(client, settings.destinations)
    return prometheus_lines(states, prefix="dsxconnect_webhook", label="webhook", what="a webhook")
