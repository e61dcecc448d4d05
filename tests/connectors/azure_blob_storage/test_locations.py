"""Locations that Azure's HTTP stack would rewrite: with a SAS (or Entra) credential, nothing in the
request signature stops urllib3 from resolving ``./``, so ``./dsxconnect-quarantine/x`` must be
refused before any request (found with a SAS token on Azurite)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from azure.storage.blob import AccountSasPermissions, ResourceTypes, generate_account_sas

from shared.connector import create_connector_app
from tests.connectors.azure_blob_storage.conftest import AzureStore
from tests.support.cloud_contract import QUARANTINE, unique
from tests.support.emulators import AZURITE_ACCOUNT, AZURITE_KEY

pytestmark = [pytest.mark.integration, pytest.mark.anyio]


def sas_token() -> str:
    return generate_account_sas(
        AZURITE_ACCOUNT,
        AZURITE_KEY,
        ResourceTypes(service=True, container=True, object=True),
        AccountSasPermissions(read=True, write=True, delete=True, list=True, tag=True, create=True, add=True),
        expiry=datetime.now(UTC) + timedelta(hours=1),
    )


async def test_a_dot_segment_cannot_reach_the_quarantine_with_a_sas_credential(store: AzureStore) -> None:
    bucket = unique("dsx")
    store.create_bucket(bucket)
    store.put(bucket, f"{QUARANTINE}/q/secret.exe", b"quarantined evidence")
    store.put(bucket, "in/ok.txt", b"ok")
    settings: dict[str, Any] = {"azure_sas_token": sas_token(), "azure_account_key": None}
    connector = store.connector(asset=bucket, auth={"enabled": False}, **settings)
    try:
        app = create_connector_app(connector)
        async with httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app), base_url=f"http://test/{store.name}/"
        ) as http:
            for location in (
                f"./{QUARANTINE}/q/secret.exe",
                f"in/../{QUARANTINE}/q/secret.exe",
                "in/./ok.txt",
            ):
                read = await http.post("read_file", json={"location": location, "metainfo": "x"})
                assert read.status_code in (400, 403) and read.json()["status"] == "error", location
                act = await http.put(
                    "item_action",
                    json={"location": location, "metainfo": "x", "requested_action": {"type": "delete"}},
                )
                assert act.status_code in (400, 403) and act.json()["status"] == "error", location
            ok = await http.post("read_file", json={"location": "in/ok.txt", "metainfo": "x"})
            assert ok.status_code == 200 and ok.content == b"ok"
    finally:
        await connector.aclose()
    assert store.get(bucket, f"{QUARANTINE}/q/secret.exe") == b"quarantined evidence"
    assert store.get(bucket, "in/ok.txt") == b"ok"
