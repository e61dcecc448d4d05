"""Guarded actions: an action applies only to the version of an item whose bytes were scanned.

The wire contract between the core and connectors (additive to SPEC §5; 1.x connectors ignore it):

- ``POST /read_file`` answers the item's version, when the storage has one, in the
  :data:`ITEM_VERSION_HEADER` response header: an opaque ASCII string of at most
  :data:`MAX_VERSION_CHARS` characters (filesystem ``dev:ino:size:mtime_ns``, S3 ``ETag;mtime=…`` or ``ETag;vid=…``,
  Azure ETag, GCS generation, Graph eTag).
- ``POST /read_files`` answers :data:`ITEM_VERSIONS_HEADER`: a JSON array with one entry per
  requested item, in request order, each the version string or ``null``.
- ``PUT /item_action``: the scan request may carry ``item_version`` (what the core scanned). When it
  does, the connector acts only if the item still has that version, atomically where the storage
  allows it (``If-Match``, ``ifGenerationMatch``, a check on the open file). Otherwise it answers
  412 with ``error`` = :data:`ERROR_ITEM_CHANGED` and touches nothing. An item that no longer exists
  answers 404 with ``error`` = :data:`ERROR_NOT_FOUND`. The core decides from the status and the
  ``error`` field, never from message text.
"""

from __future__ import annotations

ITEM_VERSION_HEADER = "X-Item-Version"
ITEM_VERSIONS_HEADER = "X-Item-Versions"
MAX_VERSION_CHARS = 256

ERROR_ITEM_CHANGED = "item_changed"
ERROR_NOT_FOUND = "not_found"
ITEM_CHANGED_STATUS = 412
