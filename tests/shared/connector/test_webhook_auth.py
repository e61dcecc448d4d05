"""The generic webhook scheme (a shared secret header) and what every webhook gets: 401 before
any parsing, refusals counted on ``/readyz``, the secret redacted, and the unverified switch."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from shared.connector import Item, create_connector_app
from tests.shared.connector.memory_connector import MemoryConnector, MemorySettings
from tests.support.auth import CONNECTOR_AUTH, core_signer

pytestmark = [pytest.mark.unit, pytest.mark.anyio]

PREFIX = "/memory-connector"
SECRET = "generic-webhook-secret-0123"


class PushedConnector(MemoryConnector):
    """A connector without a native scheme: its webhook names the items in ``{"locations": [...]}``."""

    seen: list[dict[str, Any]]

    async def webhook(self, event: dict[str, Any]) -> list[Item]:
        self.seen.append(event)
        return [Item(location, location) for location in event.get("locations", [])]


def connector(**webhook: Any) -> PushedConnector:
    c = PushedConnector(MemorySettings(auth=CONNECTOR_AUTH, webhook=webhook), items={"a.txt": b"a"})  # type: ignore[arg-type]
    c.seen = []
    return c


async def client_for(c: MemoryConnector) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=create_connector_app(c))
    async with httpx.AsyncClient(transport=transport, base_url="http://t") as http:
        yield http


@pytest.fixture
def pushed() -> PushedConnector:
    return connector(secret=SECRET)


@pytest.fixture
async def client(pushed: PushedConnector) -> AsyncIterator[httpx.AsyncClient]:
    async for http in client_for(pushed):
        yield http


async def test_the_secret_header_lets_an_event_in(client: httpx.AsyncClient, pushed: PushedConnector) -> None:
    response = await client.post(
        f"{PREFIX}/webhook/event", json={"locations": ["a.txt"]}, headers={"X-DSX-Webhook-Secret": SECRET}
    )
    assert response.status_code == 200 and response.json()["status"] == "success"
    assert pushed.seen == [{"locations": ["a.txt"]}]


@pytest.mark.parametrize("headers", [{}, {"X-DSX-Webhook-Secret": "wrong"}, {"X-DSX-Webhook-Secret": ""}])
async def test_a_missing_or_wrong_secret_is_refused_before_parsing(
    client: httpx.AsyncClient, pushed: PushedConnector, headers: dict[str, str]
) -> None:
    response = await client.post(f"{PREFIX}/webhook/event", content=b"{not json", headers=headers)
    assert response.status_code == 401 and response.json()["error"] == "unauthenticated"
    assert pushed.seen == []


async def test_the_generic_route_takes_no_query_secret(client: httpx.AsyncClient) -> None:
    response = await client.post(f"{PREFIX}/webhook/event", params={"secret": SECRET}, json={})
    assert response.status_code == 401


async def test_refusals_are_counted_on_readyz(client: httpx.AsyncClient) -> None:
    for _ in range(3):
        await client.post(f"{PREFIX}/webhook/event", json={"locations": ["a.txt"]})
    await client.post(f"{PREFIX}/webhook/event", json={}, headers={"X-DSX-Webhook-Secret": SECRET})
    ready = await client.get("/readyz")
    stats = ready.json()["webhooks"]
    assert stats["refused"] == 3 and stats["accepted"] == 1 and stats["verify"] is True
    assert "last_refusal" not in stats and SECRET not in ready.text  # reasons go to the log only


async def test_without_a_configured_secret_every_event_is_refused() -> None:
    async for http in client_for(connector()):
        response = await http.post(f"{PREFIX}/webhook/event", json={}, headers={"X-DSX-Webhook-Secret": "x"})
        assert response.status_code == 401 and "DSXCONNECTOR_WEBHOOK__SECRET" in response.json()["message"]


async def test_options_is_not_served_without_a_handshake(client: httpx.AsyncClient) -> None:
    assert (await client.options(f"{PREFIX}/webhook/event")).status_code == 405


async def test_the_secret_is_redacted_in_config(pushed: PushedConnector) -> None:
    transport = httpx.ASGITransport(app=create_connector_app(pushed))
    async with httpx.AsyncClient(transport=transport, base_url="http://t", auth=core_signer()) as http:
        config = (await http.get(f"{PREFIX}/config")).json()
    assert config["webhook"]["secret"] == "***" and SECRET not in str(config)


async def test_verification_can_be_turned_off_with_a_warning(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING):
        unverified = connector(verify=False)
        async for http in client_for(unverified):
            response = await http.post(f"{PREFIX}/webhook/event", json={"locations": ["a.txt"]})
            assert response.status_code == 200
    assert "WITHOUT verifying" in caplog.text


def test_the_settings_come_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DSXCONNECTOR_WEBHOOK__SECRET", SECRET)
    monkeypatch.setenv("DSXCONNECTOR_WEBHOOK__VERIFY", "false")
    settings = MemorySettings()
    assert settings.webhook.secret is not None and settings.webhook.secret.get_secret_value() == SECRET
    assert settings.webhook.verify is False
