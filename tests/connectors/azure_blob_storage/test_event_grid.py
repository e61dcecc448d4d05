"""Event Grid authentication on the Azure connector's webhook: the shared secret on every request,
the validation handshake and the CloudEvents OPTIONS handshake."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest
from fastapi import FastAPI

from connectors.azure_blob_storage.connector import AzureBlobStorageConnector
from connectors.azure_blob_storage.settings import AzureBlobStorageSettings
from shared.connector import create_connector_app
from tests.connectors.azure_blob_storage.conftest import AZURITE_KEY, blob_created, validation_event

pytestmark = [pytest.mark.unit, pytest.mark.anyio]

PREFIX = "/azure-blob-storage-connector"
SECRET = "eg-secret-0123456789abcdef"


def connector(secret: str | None = SECRET) -> AzureBlobStorageConnector:
    settings = {
        "asset": "uploads/in",
        "azure_account_url": "http://127.0.0.1:9/acct",
        "azure_account_key": AZURITE_KEY,
        "webhook": {"secret": secret},
    }
    return AzureBlobStorageConnector(AzureBlobStorageSettings(**settings))


@pytest.fixture
def app() -> FastAPI:
    return create_connector_app(connector())


@pytest.fixture
async def client(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as http:
        yield http


async def test_the_validation_handshake_needs_the_secret(client: httpx.AsyncClient) -> None:
    url = f"{PREFIX}/webhook/event"
    refused = await client.post(url, json=[validation_event("code-1")])
    assert refused.status_code == 401 and "validationResponse" not in refused.text
    answered = await client.post(url, params={"secret": SECRET}, json=[validation_event("code-1")])
    assert answered.status_code == 200 and answered.json() == {"validationResponse": "code-1"}


async def test_events_need_the_secret_in_the_query_or_the_header(
    client: httpx.AsyncClient, app: FastAPI
) -> None:
    url, events = f"{PREFIX}/webhook/event", [blob_created("uploads", "in/a.txt", 3)]
    assert (await client.post(url, json=events)).status_code == 401
    assert (await client.post(url, params={"secret": "wrong"}, json=events)).status_code == 401
    assert (
        await client.post(url, headers={"X-DSX-Webhook-Secret": SECRET[:-1]}, json=events)
    ).status_code == 401
    assert (await client.post(url, params={"secret": SECRET}, json=events)).status_code == 200
    assert (await client.post(url, headers={"X-DSX-Webhook-Secret": SECRET}, json=events)).status_code == 200
    stats = app.state.webhooks.stats()  # what /readyz shows (not called: the account is unreachable)
    assert stats["refused"] == 3 and stats["accepted"] == 2 and "wrong" in app.state.webhooks.last_refusal


async def test_the_cloudevents_handshake_answers_the_allowed_origin(client: httpx.AsyncClient) -> None:
    url, origin = f"{PREFIX}/webhook/event", {"WebHook-Request-Origin": "eventgrid.azure.net"}
    assert (await client.options(url, headers=origin)).status_code == 401
    answered = await client.options(url, params={"secret": SECRET}, headers=origin)
    assert answered.status_code == 200
    assert answered.headers["WebHook-Allowed-Origin"] == "eventgrid.azure.net"
    assert answered.headers["WebHook-Allowed-Rate"] == "*"
    assert (await client.options(url, params={"secret": SECRET})).status_code == 400


async def test_without_a_configured_secret_every_event_is_refused() -> None:
    app = create_connector_app(connector(secret=None))
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as client:
        response = await client.post(f"{PREFIX}/webhook/event", json=[validation_event("x")])
    assert response.status_code == 401 and "set DSXCONNECTOR_WEBHOOK__SECRET" in response.json()["message"]


async def test_the_secret_is_redacted_in_config() -> None:
    assert connector().settings.redacted()["webhook"]["secret"] == "***"
