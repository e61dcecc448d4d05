"""Pub/Sub push authentication on the GCS connector's webhook: the OIDC token, its issuer,
audience and service account, checked against a JWKS served locally."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from typing import Any

import httpx
import pytest
from cryptography.hazmat.primitives.asymmetric import rsa
from fastapi import FastAPI

from connectors.google_cloud_storage.connector import GoogleCloudStorageConnector
from connectors.google_cloud_storage.settings import GoogleCloudStorageSettings
from shared.connector import create_connector_app
from tests.connectors.google_cloud_storage.conftest import pubsub_push
from tests.support.procs import free_port
from tests.support.webhook_senders import FileServer, PubSubTokens, file_server

pytestmark = [pytest.mark.unit, pytest.mark.anyio]

PREFIX = "/google-cloud-storage-connector"
CONNECTOR_URL = "https://gcs.example.com/google-cloud-storage-connector"
AUDIENCE = f"{CONNECTOR_URL}/webhook/event"


@pytest.fixture(scope="module")
def server() -> Iterator[FileServer]:
    with file_server() as running:
        yield running


@pytest.fixture(scope="module")
def tokens(server: FileServer) -> PubSubTokens:
    return PubSubTokens(server)


def settings(tokens: PubSubTokens, **overrides: Any) -> GoogleCloudStorageSettings:
    base = {
        "asset": "uploads/in",
        "gcs_endpoint_url": "http://127.0.0.1:9",
        "gcs_anonymous": True,
        "connector_url": CONNECTOR_URL,
        "gcs_push_service_accounts": f"other@x.iam.gserviceaccount.com, {tokens.service_account}",
        "gcs_push_jwks_url": tokens.jwks_url,
    }
    return GoogleCloudStorageSettings(**(base | overrides))


@pytest.fixture
def app(tokens: PubSubTokens) -> FastAPI:
    return create_connector_app(GoogleCloudStorageConnector(settings(tokens)))


@pytest.fixture
async def client(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as http:
        yield http


async def push(client: httpx.AsyncClient, token: str | None) -> httpx.Response:
    headers = {"Authorization": f"Bearer {token}"} if token is not None else {}
    return await client.post(
        f"{PREFIX}/webhook/event", json=pubsub_push("uploads", "in/a.txt", 3), headers=headers
    )


def test_the_audience_defaults_to_the_webhook_url(tokens: PubSubTokens) -> None:
    assert settings(tokens).gcs_push_audience == AUDIENCE
    assert settings(tokens, gcs_push_audience="dsx").gcs_push_audience == "dsx"


async def test_a_push_with_a_valid_token_is_accepted(client: httpx.AsyncClient, tokens: PubSubTokens) -> None:
    response = await push(client, tokens.mint(AUDIENCE))
    assert response.status_code == 200, response.text
    plain_issuer = await push(client, tokens.mint(AUDIENCE, iss="accounts.google.com"))
    assert plain_issuer.status_code == 200, plain_issuer.text


@pytest.mark.parametrize(
    ("claims", "why"),
    [
        ({"aud": "https://elsewhere.example.com/webhook/event"}, "Audience"),
        ({"iss": "https://evil.example.com"}, "issuer"),
        ({"email": "attacker@evil.iam.gserviceaccount.com"}, "not in DSXCONNECTOR_GCS_PUSH_SERVICE_ACCOUNTS"),
        ({"email_verified": False}, "not in DSXCONNECTOR_GCS_PUSH_SERVICE_ACCOUNTS"),
        ({"exp": 1_000_000_000, "iat": 999_999_000}, "expired"),
    ],
)
async def test_a_token_with_wrong_claims_is_refused(
    client: httpx.AsyncClient, tokens: PubSubTokens, claims: dict[str, Any], why: str
) -> None:
    audience = claims.pop("aud", AUDIENCE)
    response = await push(client, tokens.mint(audience, **claims))
    assert response.status_code == 401 and why in response.json()["message"], response.text


async def test_a_token_signed_by_another_key_is_refused(
    client: httpx.AsyncClient, tokens: PubSubTokens
) -> None:
    other = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    forged = await push(client, tokens.mint(AUDIENCE, key=other))
    assert forged.status_code == 401 and "Signature" in forged.json()["message"]
    unknown_kid = await push(client, tokens.mint(AUDIENCE, key=other, kid="attacker"))
    assert unknown_kid.status_code == 401 and "not in the JWKS" in unknown_kid.json()["message"]


async def test_a_push_without_a_token_or_with_an_unsigned_one_is_refused_and_counted(
    client: httpx.AsyncClient, app: FastAPI, tokens: PubSubTokens
) -> None:
    import jwt

    none_alg = jwt.encode({"aud": AUDIENCE, "email": tokens.service_account}, key=None, algorithm="none")
    hs256 = jwt.encode({"aud": AUDIENCE}, "a-shared-secret-long-enough-for-hs256", algorithm="HS256")
    for token in (None, "", "not-a-jwt", none_alg, hs256):
        assert (await push(client, token)).status_code == 401, token
    stats = app.state.webhooks.stats()  # what /readyz shows (not called: the bucket is unreachable)
    assert stats["refused"] == 5 and stats["accepted"] == 0


async def test_without_allowed_service_accounts_every_push_is_refused(tokens: PubSubTokens) -> None:
    app = create_connector_app(GoogleCloudStorageConnector(settings(tokens, gcs_push_service_accounts="")))
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as client:
        response = await push(client, tokens.mint(AUDIENCE))
    assert (
        response.status_code == 401
        and "set DSXCONNECTOR_GCS_PUSH_SERVICE_ACCOUNTS" in response.json()["message"]
    )


async def test_a_jwks_out_of_reach_asks_for_redelivery(tokens: PubSubTokens) -> None:
    """With no keys yet and the JWKS out of reach, a push was refused (401) and counted as a forged
    one; it is the sender that cannot be checked for now: 503 with Retry-After, Pub/Sub sends again."""
    closed = f"http://127.0.0.1:{free_port()}/jwks.json"
    app = create_connector_app(GoogleCloudStorageConnector(settings(tokens, gcs_push_jwks_url=closed)))
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as client:
        response = await push(client, tokens.mint(AUDIENCE))
    assert response.status_code == 503 and response.headers["Retry-After"]
    assert app.state.webhooks.stats()["refused"] == 0


async def test_the_jwks_is_fetched_once_for_many_pushes(tokens: PubSubTokens, server: FileServer) -> None:
    app = create_connector_app(GoogleCloudStorageConnector(settings(tokens)))
    before = server.requests.count("/oauth2/v3/certs")
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as client:
        for _ in range(3):
            assert (await push(client, tokens.mint(AUDIENCE))).status_code == 200
    assert server.requests.count("/oauth2/v3/certs") == before + 1
