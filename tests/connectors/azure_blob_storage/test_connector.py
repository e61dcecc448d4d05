"""The Azure Blob Storage connector in process: Event Grid deliveries and the validation handshake."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from connectors.azure_blob_storage.connector import AzureBlobStorageConnector
from connectors.azure_blob_storage.settings import AzureBlobStorageSettings
from shared.connector import WebhookReply, create_connector_app
from tests.connectors.azure_blob_storage.conftest import blob_created, validation_event
from tests.support.emulators import AZURITE_KEY

pytestmark = [pytest.mark.unit, pytest.mark.anyio]

PREFIX = "/azure-blob-storage-connector"


def connector(**settings: Any) -> AzureBlobStorageConnector:
    """A connector whose account is never reached (webhooks only look at the event)."""
    base = {
        "asset": "uploads/in",
        "webhook": {"verify": False},  # the sender checks: test_webhook_auth.py
        "azure_account_url": "http://127.0.0.1:9/acct",
        "azure_account_key": AZURITE_KEY,
    }
    return AzureBlobStorageConnector(AzureBlobStorageSettings(**(base | settings)))


@pytest.fixture
async def client() -> AsyncIterator[httpx.AsyncClient]:
    app = create_connector_app(connector())
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as http:
        yield http


async def test_the_event_grid_validation_handshake_echoes_the_code(client: httpx.AsyncClient) -> None:
    response = await client.post(
        f"{PREFIX}/webhook/event", json=[validation_event("512d38b6-c7b8-40c8-89fe")]
    )
    assert response.status_code == 200
    assert response.json() == {"validationResponse": "512d38b6-c7b8-40c8-89fe"}
    single = await client.post(f"{PREFIX}/webhook/event", json=validation_event("one"))
    assert single.json() == {"validationResponse": "one"}
    broken = validation_event("x") | {"data": {}}
    refused = await client.post(f"{PREFIX}/webhook/event", json=[broken])
    assert refused.status_code == 400 and "validationCode" in refused.json()["message"]


async def test_blob_created_events_name_the_new_blobs_of_the_asset(client: httpx.AsyncClient) -> None:
    deleted = blob_created("uploads", "in/old.pdf", 1) | {"eventType": "Microsoft.Storage.BlobDeleted"}
    cloud_event = {
        "specversion": "1.0",
        "type": "Microsoft.Storage.BlobCreated",
        "source": "/subscriptions/0/resourceGroups/rg/providers/Microsoft.Storage/storageAccounts/acct",
        "subject": "/blobServices/default/containers/uploads/blobs/in/cloud event.txt",
        "data": {"contentLength": 5},
    }
    events = [
        blob_created("uploads", "in/docs/report 2024.pdf", 12),
        deleted,
        blob_created("other", "in/x.pdf", 1),
        blob_created("uploads", "out/x.pdf", 1),
        blob_created("uploads", "in/x.tmp", 1),
        cloud_event,
        "not an event",
    ]
    items = await connector(filter="-*.tmp").webhook({"events": events})
    assert not isinstance(items, WebhookReply)
    assert [(i.location, i.metainfo, i.size) for i in items] == [
        ("in/docs/report 2024.pdf", "uploads/in/docs/report 2024.pdf", 12),
        ("in/cloud event.txt", "uploads/in/cloud event.txt", 5),
    ]
    assert [i.version for i in items] == ["0x8D4BCC2E4835CD0", None]  # the eTag, as read answers it
    response = await client.post(f"{PREFIX}/webhook/event", json=events)
    assert response.status_code == 200 and response.json()["status"] == "success"


def test_a_quarantine_inside_the_asset_is_warned_about_at_configure(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level("WARNING", logger="shared.connector.buckets"):
        connector(asset="uploads", item_action_move_metainfo="dsxconnect-quarantine")
        connector(asset="uploads", azure_quarantine_container="quarantine")
    warned = [r.getMessage() for r in caplog.records if r.name == "shared.connector.buckets"]
    assert len(warned) == 1 and "separate quarantine container" in warned[0], warned
