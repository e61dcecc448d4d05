"""Event Grid on the real stack: a connector process on Azurite with the shared secret set, the real
core (auth on) and workers. The handshake and events with the secret work, events get their blobs
scanned in one monitor job; events without it, or with a wrong one, answer 401 and scan nothing."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.connectors.azure_blob_storage.conftest import blob_created, validation_event
from tests.support.cloud_contract import Core, unique
from tests.support.webhook_senders import connector_process, scanned_in_one_monitor_job, webhook_stats

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(300)]

SECRET = "event-grid-e2e-secret-0123456789"


@pytest.fixture(scope="module")
def connector(store: Any, core: Core, logs_dir: Path) -> Iterator[tuple[str, dict[str, Any], str]]:
    with connector_process(store, core, logs_dir, DSXCONNECTOR_WEBHOOK__SECRET=SECRET) as running:
        yield running


def test_events_with_the_secret_are_scanned_and_the_others_refused(
    store: Any, core: Core, connector: tuple[str, dict[str, Any], str]
) -> None:
    url, registration, container = connector
    hook = f"{url}/webhook/event"
    handshake = httpx.post(hook, params={"secret": SECRET}, json=[validation_event("code-7")], timeout=15)
    assert handshake.json() == {"validationResponse": "code-7"}
    for key, params in (("incoming/no-secret.txt", {}), ("incoming/wrong.txt", {"secret": "guess"})):
        store.put(container, key, b"never scanned\n")
        refused = httpx.post(hook, params=params, json=[blob_created(container, key, 14)], timeout=15)
        assert refused.status_code == 401, refused.text

    keys = [f"incoming/pushed/{unique('new')}.txt" for _ in range(3)]
    for key in keys:
        store.put(container, key, b"pushed\n")
        answer = httpx.post(
            hook, params={"secret": SECRET}, json=[blob_created(container, key, 7)], timeout=15
        )
        assert answer.status_code == 200 and answer.json()["submitted"] == 1, answer.text

    scanned_in_one_monitor_job(core, registration["uuid"], keys)
    locations = {r["location"] for r in core.results(connector=registration["uuid"])}
    assert not locations & {"incoming/no-secret.txt", "incoming/wrong.txt"}
    assert webhook_stats(url) == {"verify": True, "accepted": 4, "refused": 2}
