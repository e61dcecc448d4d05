"""The connector framework: subclass :class:`Connector`, hand it to :func:`create_connector_app`.

Modules: ``base`` (the contract), ``settings`` (``DSXCONNECTOR_*``), ``filters`` (include/exclude
globs), ``locations`` (stay inside the asset), ``errors`` (error mapping), ``core_client``
(control plane), ``submit`` and ``scan`` (full scans), ``runtime`` (heartbeat, watcher),
``routes`` / ``responses`` / ``app`` (HTTP), ``security`` (DSX-HMAC seams), ``threads``,
``buckets`` (what object-store connectors share).
"""

from shared.connector.app import create_connector_app
from shared.connector.base import (
    SMALL_ITEM_BYTES,
    STREAM_CHUNK_BYTES,
    Connector,
    Item,
    ItemContent,
    WebhookReply,
)
from shared.connector.errors import ItemChangedError, UnsupportedError, check_version, classify_error
from shared.connector.filters import Filter
from shared.connector.locations import is_within, open_inside, relative_location, resolve_inside
from shared.connector.settings import ConnectorSettings
from shared.connector.threads import iterate_in_thread

__all__ = [
    "SMALL_ITEM_BYTES",
    "STREAM_CHUNK_BYTES",
    "Connector",
    "ConnectorSettings",
    "Filter",
    "Item",
    "ItemChangedError",
    "ItemContent",
    "UnsupportedError",
    "WebhookReply",
    "check_version",
    "classify_error",
    "create_connector_app",
    "is_within",
    "iterate_in_thread",
    "open_inside",
    "relative_location",
    "resolve_inside",
]
