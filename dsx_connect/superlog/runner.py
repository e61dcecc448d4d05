"""Where the forwarder runs: a background thread group in a Celery worker, or its own process.

In a worker, ``DSXCONNECT_SUPERLOG__FORWARDER`` decides: ``auto`` (default) starts it in the worker
that consumes ``scan_result_notification_queue`` (a light, single-process worker in the local stack
and in deployments, so delivery takes no CPU from scans and needs no extra process), ``on`` in every
worker, ``off`` in none (run ``python -m dsx_connect.superlog`` instead). Running it in several places
is safe: one forwarder per destination works at a time (see ``buffer``).
"""

from __future__ import annotations

import logging
from collections.abc import Iterable

from dsx_connect.queues import SCAN_RESULT_NOTIFICATION_QUEUE
from dsx_connect.redis_client import get_redis
from dsx_connect.settings import Settings, get_settings
from dsx_connect.superlog.forwarder import ForwarderGroup

log = logging.getLogger(__name__)

_group: ForwarderGroup | None = None


def wanted_in_worker(settings: Settings, queues: Iterable[str]) -> bool:
    """Whether a worker consuming ``queues`` should run the forwarder."""
    mode = settings.superlog.forwarder
    if not settings.superlog.active or mode == "off":
        return False
    return mode == "on" or SCAN_RESULT_NOTIFICATION_QUEUE in set(queues)


def start_in_worker(queues: Iterable[str]) -> ForwarderGroup | None:
    """Start the forwarder threads in this worker process when it is the place for them."""
    global _group
    settings = get_settings()
    if _group is not None or not wanted_in_worker(settings, queues):
        return _group
    _group = ForwarderGroup(get_redis(), settings).start()
    log.info("superlog forwarder running in this worker for %s", ", ".join(settings.superlog.active))
    return _group


def stop_in_worker() -> None:
    """Stop the forwarder threads (worker shutdown); the buffers keep what was not delivered."""
    global _group
    group, _group = _group, None
    if group is not None:
        group.stop()
