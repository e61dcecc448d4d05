"""Where the webhooks' forwarders run: threads of the worker consuming ``scan_result_notification_queue``
(the step that fills their buffers), one per webhook; several such workers are safe (one forwarder
per webhook works at a time, as for the SIEM feed)."""

from __future__ import annotations

import logging
from collections.abc import Iterable

from dsx_connect.notifications.sink import WebhookSink
from dsx_connect.queues import SCAN_RESULT_NOTIFICATION_QUEUE
from dsx_connect.redis_client import get_redis
from dsx_connect.settings import Settings, get_settings
from dsx_connect.superlog.config import SuperlogSettings, lock_ttl_for, lock_ttl_problem
from dsx_connect.superlog.forwarder import ForwarderGroup

log = logging.getLogger(__name__)

_group: ForwarderGroup | None = None


def delivery_settings(settings: Settings) -> SuperlogSettings:
    """The forwarder's knobs for webhooks: the feed's (lock, redaction), with the webhooks' buffer and retries;
    the lock TTL raised above twice ``NOTIFICATIONS__TIMEOUT_S`` when the feed's is not."""
    hooks = settings.notifications
    lock_ttl_s = settings.superlog.lock_ttl_s
    if lock_ttl_problem(lock_ttl_s, {"DSXCONNECT_NOTIFICATIONS__TIMEOUT_S": hooks.timeout_s}):
        # the feed's TTL, shared, may be shorter than a webhook call may last: outlast it comfortably
        lock_ttl_s = max(lock_ttl_s, lock_ttl_for(hooks.timeout_s))
    return settings.superlog.model_copy(
        update={
            "lock_ttl_s": lock_ttl_s,
            "buffer_max_events": hooks.buffer_max_events,
            "batch_max_events": 50,
            "retry_backoff_s": hooks.retry_backoff_s,
            "retry_backoff_max_s": hooks.retry_backoff_max_s,
        }
    )


def webhook_forwarders(settings: Settings) -> ForwarderGroup:
    """A forwarder per configured webhook (not started)."""
    sinks = [WebhookSink(hook, settings.notifications) for hook in settings.notifications.webhooks]
    return ForwarderGroup(get_redis(), settings, sinks=sinks, feed=delivery_settings(settings))


def start_in_worker(queues: Iterable[str]) -> ForwarderGroup | None:
    """Start the webhooks' forwarders in the notification worker, when webhooks are configured."""
    global _group
    settings = get_settings()
    if _group is not None or not settings.notifications.webhooks:
        return _group
    if SCAN_RESULT_NOTIFICATION_QUEUE not in set(queues):
        return None
    _group = webhook_forwarders(settings).start()
    shown = ", ".join(hook.shown_url for hook in settings.notifications.webhooks)
    log.info("notification webhooks delivered from this worker: %s", shown)
    return _group


def stop_in_worker() -> None:
    """Stop them (worker shutdown); the buffers keep what was not delivered."""
    global _group
    group, _group = _group, None
    if group is not None:
        group.stop()
