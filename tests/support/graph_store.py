"""The contract's view of a Graph drive (``tests.support.cloud_contract.Store``), on the fake Graph.

A "bucket" is a drive (id ``b!<name>``, named ``<name>``); a key is a path in it. The connector
finds it by ``GRAPH_DRIVE_ID`` and scans the folder the rest of the asset names.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import httpx

from connectors.graph.drive import GraphDriveConnector, parse_tags
from tests.support.fake_graph import FakeGraph

TENANT = "contoso.onmicrosoft.com"
CLIENT_ID = "11111111-2222-3333-4444-555555555555"
CLIENT_SECRET = "fake-graph-client-secret-1"  # the fake's test credential
CLIENT_STATE = "graph-client-state-for-tests"


def drive_id(bucket: str) -> str:
    return f"b!{bucket}"


def unique_drive(store: GraphStore, create: bool = True) -> str:
    """A new drive's name (the drive is made unless ``create`` is false)."""
    name = f"drive-{uuid.uuid4().hex[:10]}"
    if create:
        store.create_bucket(name)
    return name


class GraphStore:
    """A Graph connector package over the fake; subclass it with ``package``, ``name`` and ``make``."""

    package = ""
    name = ""
    quarantine_setting = ""  # a Graph quarantine is a folder of the same drive
    page_size_setting = "graph_page_size"
    #: with MONITOR on, a notification is answered 202 at once and the monitor reads the delta
    notification_submits = False
    #: a full scan after the first reads only what changed since (Graph delta, GRAPH_INCREMENTAL_SCAN)
    incremental_full_scan = True

    def __init__(self, fake: FakeGraph) -> None:
        self.fake = fake
        fake.add_client(CLIENT_ID, CLIENT_SECRET)

    def make(self, **settings: Any) -> GraphDriveConnector[Any]:
        raise NotImplementedError

    def credentials(self) -> dict[str, Any]:
        return {
            "sp_tenant_id": TENANT,
            "sp_client_id": CLIENT_ID,
            "sp_client_secret": CLIENT_SECRET,
            "graph_base_url": self.fake.url,
            "graph_login_host": self.fake.url,
            "graph_ca_bundle": str(self.fake.ca_file),
            "graph_client_state": CLIENT_STATE,
            "graph_retry_max_s": 2.0,
        }

    def connector(self, **settings: Any) -> GraphDriveConnector[Any]:
        asset = str(settings.pop("asset", ""))
        bucket, _, folder = asset.partition("/")
        if bucket and "graph_drive_id" not in settings:
            settings["graph_drive_id"] = drive_id(bucket)
        return self.make(**{**self.credentials(), "asset": folder, **settings})

    def connector_env(self) -> dict[str, str]:
        return {f"DSXCONNECTOR_{k.upper()}": str(v) for k, v in self.credentials().items()}

    def deployment_env(self, bucket: str, connector_url: str) -> dict[str, str]:
        """What the contract's connector process needs beyond ``connector_env`` (asset, monitor)."""
        return {
            "DSXCONNECTOR_ASSET": "incoming",
            "DSXCONNECTOR_GRAPH_DRIVE_ID": drive_id(bucket),
            "DSXCONNECTOR_MONITOR": "true",
            "DSXCONNECTOR_WEBHOOK_URL": f"{connector_url}/webhook/event",
        }

    def create_bucket(self, bucket: str) -> None:
        self.fake.add_drive(drive_id(bucket), bucket)

    def put(self, bucket: str, key: str, data: bytes) -> None:
        self.fake.put(drive_id(bucket), key, data)

    def get(self, bucket: str, key: str) -> bytes | None:
        return self.fake.get(drive_id(bucket), key)

    def keys(self, bucket: str, prefix: str = "") -> list[str]:
        return self.fake.files(drive_id(bucket), prefix)

    def tags(self, bucket: str, key: str) -> dict[str, str]:
        item = self.fake.item(drive_id(bucket), key) or {}
        return parse_tags(item.get("description"))

    def notify(self, connector_url: str, bucket: str, key: str, size: int) -> httpx.Response:
        """A change notification as Graph posts it for a drive subscription."""
        notification = {
            "subscriptionId": "00000000-0000-0000-0000-000000000001",
            "clientState": CLIENT_STATE,
            "changeType": "updated",
            "resource": f"drives/{drive_id(bucket)}/root",
            "subscriptionExpirationDateTime": "2030-01-01T00:00:00Z",
            "tenantId": TENANT,
        }
        return httpx.post(f"{connector_url}/webhook/event", json={"value": [notification]}, timeout=30)

    @contextmanager
    def bad_credentials(self) -> Iterator[dict[str, Any]]:
        yield {"sp_client_secret": "not-the-secret"}
