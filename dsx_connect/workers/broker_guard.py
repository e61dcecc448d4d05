"""A broker connection lost at the wrong moment must not stop a worker.

When Celery loses its Redis connection it releases it with kombu's
``Connection.maybe_close_channel``, which ignores connection and channel errors only. Closing the
channel restores its unacknowledged messages, and when the transport is already detached from its
connection (seen after ``kill -9`` of Redis with tasks in flight: ``AttributeError: 'NoneType'
object has no attribute 'hostname'``) that raises an ``AttributeError``, which Celery reports as
unrecoverable: the worker's main process exits and nothing consumes its queue any more.

Those messages need no restore at that moment: kombu wrote each one to Redis's unacked hash when it
delivered it, and its periodic sweep (``unacked_restore_interval``, celery_app.py) delivers it again
once the visibility timeout has passed; the job lease sweep sends the items again as well. So the
guard lets the close go on without the restore, and says so in the log.
"""

from __future__ import annotations

import logging
from typing import Any

from kombu.connection import Connection

log = logging.getLogger(__name__)

_original = Connection.maybe_close_channel


def _maybe_close_channel(self: Connection, channel: Any) -> None:
    try:
        _original(self, channel)
    except AttributeError as exc:
        log.warning(
            "broker channel closed without restoring its unacknowledged messages (%r); "
            "the unacked sweep delivers them again after the visibility timeout",
            exc,
        )


_maybe_close_channel.dsx_guard = True  # type: ignore[attr-defined]


def install() -> None:
    """Guard kombu's channel close (once per process)."""
    if not getattr(Connection.maybe_close_channel, "dsx_guard", False):
        Connection.maybe_close_channel = _maybe_close_channel  # type: ignore[method-assign]
