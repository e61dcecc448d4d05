"""The Google Cloud Storage connector in process: Pub/Sub push deliveries of bucket notifications."""

from __future__ import annotations

import base64
import json
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from connectors.google_cloud_storage.connector import GoogleCloudStorageConnector
from connectors.google_cloud_storage.settings import GoogleCloudStorageSettings
from shared.connector import create_connector_app
from tests.connectors.google_cloud_storage.conftest import pubsub_push

pytestmark = [pytest.mark.unit, pytest.mark.anyio]

PREFIX = "/google-cloud-storage-connector"


def connector(**settings: Any) -> GoogleCloudStorageConnector:
    """A connector whose bucket is never reached (webhooks only look at the event)."""
    base = {
        "asset": "uploads/in",
        "webhook": {"verify": False},
        "gcs_endpoint_url": "http://127.0.0.1:9",
        "gcs_anonymous": True,
    }
    return GoogleCloudStorageConnector(GoogleCloudStorageSettings(**(base | settings)))


@pytest.fixture
async def client() -> AsyncIterator[httpx.AsyncClient]:
    app = create_connector_app(connector())
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as http:
        yield http


async def test_object_finalize_names_the_new_object_of_the_asset(client: httpx.AsyncClient) -> None:
    c = connector(filter="-*.tmp", item_action_move_metainfo="in/quarantine")
    items = await c.webhook(pubsub_push("uploads", "in/docs/report 2024.pdf", 12))
    assert [(i.location, i.metainfo, i.size) for i in items] == [
        ("in/docs/report 2024.pdf", "uploads/in/docs/report 2024.pdf", 12)
    ]
    assert [i.version for i in items] == ["1"]  # the generation, as read answers it
    for ignored in (
        pubsub_push("uploads", "in/old.pdf", 1, event_type="OBJECT_DELETE"),
        pubsub_push("uploads", "in/old.pdf", 1, event_type="OBJECT_METADATA_UPDATE"),
        pubsub_push("other", "in/x.pdf", 1),
        pubsub_push("uploads", "out/x.pdf", 1),
        pubsub_push("uploads", "in/x.tmp", 1),
        pubsub_push("uploads", "in/quarantine/x.pdf", 1),
    ):
        assert await c.webhook(ignored) == []
    response = await client.post(f"{PREFIX}/webhook/event", json=pubsub_push("uploads", "in/a.txt", 3))
    assert response.status_code == 200 and response.json()["status"] == "success"


async def test_a_notification_without_payload_uses_the_attributes() -> None:
    push = pubsub_push("uploads", "in/bare.txt", 0)
    del push["message"]["data"]
    push["message"]["attributes"]["payloadFormat"] = "NONE"
    items = await connector().webhook(push)
    assert [(i.location, i.size) for i in items] == [("in/bare.txt", None)]


async def test_what_is_not_a_push_delivery_is_refused(client: httpx.AsyncClient) -> None:
    missing = await client.post(f"{PREFIX}/webhook/event", json={"Records": []})
    assert missing.status_code == 400 and "Pub/Sub" in missing.json()["message"]
    garbled = pubsub_push("uploads", "in/a.txt", 3)
    garbled["message"]["data"] = "%%% not base64"
    refused = await client.post(f"{PREFIX}/webhook/event", json=garbled)
    assert refused.status_code == 400 and "base64" in refused.json()["message"]
    not_json = pubsub_push("uploads", "in/a.txt", 3)
    not_json["message"]["data"] = base64.b64encode(b"not json").decode()
    assert (await client.post(f"{PREFIX}/webhook/event", json=not_json)).status_code == 400
    assert json.loads(base64.b64decode(pubsub_push("b", "k", 1)["message"]["data"]))["size"] == "1"


@pytest.mark.parametrize(
    ("field", "value", "problem"),
    [
        ("attributes", ["eventType", "OBJECT_FINALIZE"], "attributes is not an object"),
        ("data", 12, "not base64-encoded JSON"),
        ("data", base64.b64encode(b'["a list"]').decode(), "not a JSON object"),
    ],
)
async def test_a_push_of_the_wrong_shape_is_refused_with_400_not_500(
    client: httpx.AsyncClient, field: str, value: Any, problem: str
) -> None:
    """Pub/Sub redelivers a 5xx until the message expires: a malformed push is refused for good."""
    push = pubsub_push("uploads", "in/a.txt", 3)
    push["message"][field] = value
    response = await client.post(f"{PREFIX}/webhook/event", json=push)
    assert response.status_code == 400, response.text
    assert problem in response.json()["message"]


def test_an_sdk_message_quoting_a_signed_url_loses_its_query() -> None:
    import requests

    from shared.redaction import redact

    url = "/b/uploads/o/in%2Fa.pdf?X-Goog-Credential=sa%40p&X-Goog-Signature=SECRETSIG123"
    exc = requests.exceptions.ConnectionError(
        f"HTTPConnectionPool(host='127.0.0.1', port=9): Max retries exceeded with url: {url} (Caused by x)"
    )
    err = connector().classify_error(exc)
    assert err.status_code == 503 and "unreachable" in err.message
    assert "SECRETSIG123" not in err.message and "X-Goog-Credential" not in err.message, err.message
    assert "SECRETSIG123" not in redact(str(exc))


def test_a_quarantine_inside_the_asset_is_warned_about_at_configure(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level("WARNING", logger="shared.connector.buckets"):
        connector(asset="uploads", item_action_move_metainfo="dsxconnect-quarantine")
        connector(asset="uploads", gcs_quarantine_bucket="quarantine")
    warned = [r.getMessage() for r in caplog.records if r.name == "shared.connector.buckets"]
    assert len(warned) == 1 and "'uploads/dsxconnect-quarantine' lies inside" in warned[0], warned
