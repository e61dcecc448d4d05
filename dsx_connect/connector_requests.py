"""What the core sends a connector (SPEC §5): the routes it calls and the bodies it posts.

The one place that joins a connector's registered URL (its route prefix included) with a route
name, and that builds the scan request a connector's ``read_file``, ``read_files`` and
``item_action`` expect. The hot path (``workers.hot_path``, its own transport) and the
control-plane client (``connector_client.ConnectorClient``, httpx) both build from here.
"""

from __future__ import annotations

import json
from enum import StrEnum

from dsx_connect.workers.outcome import ConnectorRef
from shared.models import ScanTask


class Route(StrEnum):
    """The connector routes the core calls (a test checks each is one the connector framework serves)."""

    READ_FILE = "read_file"
    READ_FILES = "read_files"
    ITEM_ACTION = "item_action"
    FULL_SCAN = "full_scan"
    ESTIMATE = "estimate"
    REPO_CHECK = "repo_check"
    CONFIG = "config"
    HEALTHZ = "healthz"
    READYZ = "readyz"


def route_url(connector_url: str, route: Route) -> str:
    """The URL of ``route`` at a connector registered at ``connector_url`` (a trailing ``/`` or not)."""
    return f"{connector_url.rstrip('/')}/{route.value}"


def read_file_body(task: ScanTask, connector: ConnectorRef) -> dict[str, object]:
    """The scan request a connector's ``/read_file`` expects (SPEC §5)."""
    return {
        "connector": {"uuid": connector.uuid, "name": connector.name, "url": connector.url},
        "location": task.location,
        "metainfo": task.metainfo,
        "connector_url": connector.url,
        "size_in_bytes": task.size_in_bytes,
        "scan_job_id": task.job_id,
        "job_item_id": task.job_item_id,
    }


def read_files_body(tasks: list[ScanTask]) -> bytes:
    """The JSON body of ``/read_files``: the items to read, in order (shared/batch_read.py)."""
    return json.dumps({"items": [{"location": t.location, "metainfo": t.metainfo} for t in tasks]}).encode()


def item_action_body(task: ScanTask, connector: ConnectorRef, item_version: str | None) -> dict[str, object]:
    """The scan request of ``/item_action``: ``read_file``'s, with the action the request asked for
    (``requested_action``) and the version scanned (``item_version``), which guards the action."""
    body = read_file_body(task, connector)
    if task.requested_action is not None:
        body["requested_action"] = task.requested_action.model_dump(mode="json")
    if item_version is not None:
        body["item_version"] = item_version
    return body
