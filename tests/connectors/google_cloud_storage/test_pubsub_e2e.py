"""Pub/Sub push on the real stack: a connector process on the GCS emulator with token checks on, the
real core (auth on) and workers. Pushes with a valid OIDC token get their objects scanned, in one
monitor job; pushes without a token or with a forged one answer 401 and scan nothing."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from cryptography.hazmat.primitives.asymmetric import rsa

from tests.connectors.google_cloud_storage.conftest import pubsub_push
from tests.support.cloud_contract import Core, unique
from tests.support.webhook_senders import (
    PubSubTokens,
    connector_process,
    file_server,
    scanned_in_one_monitor_job,
    webhook_stats,
)

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(300)]


@pytest.fixture(scope="module")
def tokens() -> Iterator[PubSubTokens]:
    with file_server() as server:
        yield PubSubTokens(server)


@pytest.fixture(scope="module")
def connector(
    store: Any, core: Core, tokens: PubSubTokens, logs_dir: Path
) -> Iterator[tuple[str, dict[str, Any], str]]:
    env = {
        "DSXCONNECTOR_GCS_PUSH_SERVICE_ACCOUNTS": tokens.service_account,
        "DSXCONNECTOR_GCS_PUSH_JWKS_URL": tokens.jwks_url,
    }
    with connector_process(store, core, logs_dir, **env) as running:
        yield running


def test_pushes_with_a_valid_token_are_scanned_and_the_others_refused(
    store: Any, core: Core, tokens: PubSubTokens, connector: tuple[str, dict[str, Any], str]
) -> None:
    url, registration, bucket = connector
    audience = f"{url}/webhook/event"
    other = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    for key, token in (
        ("incoming/no-token.txt", None),
        ("incoming/forged.txt", tokens.mint(audience, key=other)),
    ):
        store.put(bucket, key, b"never scanned\n")
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        refused = httpx.post(audience, json=pubsub_push(bucket, key, 14), headers=headers, timeout=15)
        assert refused.status_code == 401, refused.text

    keys = [f"incoming/pushed/{unique('new')}.txt" for _ in range(3)]
    for key in keys:
        store.put(bucket, key, b"pushed\n")
        headers = {"Authorization": f"Bearer {tokens.mint(audience)}"}
        answer = httpx.post(audience, json=pubsub_push(bucket, key, 7), headers=headers, timeout=15)
        assert answer.status_code == 200 and answer.json()["submitted"] == 1, answer.text

    scanned_in_one_monitor_job(core, registration["uuid"], keys)
    locations = {r["location"] for r in core.results(connector=registration["uuid"])}
    assert not locations & {"incoming/no-token.txt", "incoming/forged.txt"}
    assert webhook_stats(url) == {"verify": True, "accepted": 3, "refused": 2}
