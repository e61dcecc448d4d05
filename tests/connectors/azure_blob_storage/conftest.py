"""Fixtures of the Azure Blob Storage connector tests: Azurite (from npm), and the SDK pointed at it."""

from __future__ import annotations

import base64
import os
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest
from azure.core.exceptions import ResourceNotFoundError
from azure.storage.blob import BlobServiceClient

from connectors.azure_blob_storage.connector import AzureBlobStorageConnector
from connectors.azure_blob_storage.settings import AzureBlobStorageSettings
from tests.support.cloud_contract import core  # noqa: F401  (a fixture)
from tests.support.emulators import AZURITE_ACCOUNT, AZURITE_KEY, Emulator, azurite


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for key in list(os.environ):
        if key.startswith(("DSXCONNECTOR_", "DSXCONNECT_", "AZURE_")):
            monkeypatch.delenv(key)


class AzureStore:
    """The contract's view of Azure Blob Storage (``tests.support.cloud_contract.Store``), on Azurite."""

    package, name = "azure_blob_storage", "azure-blob-storage-connector"
    quarantine_setting, page_size_setting = "azure_quarantine_container", "azure_list_page_size"

    def __init__(self, endpoint: str) -> None:
        self.endpoint = endpoint
        self.service = BlobServiceClient(
            endpoint, credential={"account_name": AZURITE_ACCOUNT, "account_key": AZURITE_KEY}
        )

    def settings(self, **overrides: Any) -> AzureBlobStorageSettings:
        return AzureBlobStorageSettings(
            **{"azure_account_url": self.endpoint, "azure_account_key": AZURITE_KEY, **overrides}
        )

    def connector(self, **settings: Any) -> AzureBlobStorageConnector:
        return AzureBlobStorageConnector(self.settings(**settings))

    def connector_env(self) -> dict[str, str]:
        # the DSX-Connect 1.x variable: a connection string
        connection = (
            f"DefaultEndpointsProtocol=http;AccountName={AZURITE_ACCOUNT};AccountKey={AZURITE_KEY};"
            f"BlobEndpoint={self.endpoint};"
        )
        return {"AZURE_STORAGE_CONNECTION_STRING": connection}

    def create_bucket(self, bucket: str) -> None:
        self.service.create_container(bucket)

    def put(self, bucket: str, key: str, data: bytes) -> None:
        self.service.get_blob_client(bucket, key).upload_blob(data, overwrite=True)

    def get(self, bucket: str, key: str) -> bytes | None:
        try:
            return self.service.get_blob_client(bucket, key).download_blob().readall()
        except ResourceNotFoundError:
            return None

    def keys(self, bucket: str, prefix: str = "") -> list[str]:
        return [
            blob.name
            for blob in self.service.get_container_client(bucket).list_blobs(name_starts_with=prefix)
        ]

    def tags(self, bucket: str, key: str) -> dict[str, str]:
        return self.service.get_blob_client(bucket, key).get_blob_tags()

    def notify(self, connector_url: str, bucket: str, key: str, size: int) -> httpx.Response:
        """An Event Grid delivery (an array of events, Event Grid schema) of one BlobCreated."""
        return httpx.post(f"{connector_url}/webhook/event", json=[blob_created(bucket, key, size)])

    @contextmanager
    def bad_credentials(self) -> Iterator[dict[str, Any]]:
        yield {"azure_account_key": base64.b64encode(b"not the account key" * 3).decode()}


def blob_created(container: str, name: str, size: int) -> dict[str, Any]:
    account = "/subscriptions/0000/resourceGroups/rg/providers/Microsoft.Storage/storageAccounts/acct"
    return {
        "id": str(uuid.uuid4()),
        "topic": account,
        "subject": f"/blobServices/default/containers/{container}/blobs/{name}",
        "eventType": "Microsoft.Storage.BlobCreated",
        "eventTime": "2024-05-01T12:00:00.0000000Z",
        "data": {
            "api": "PutBlob",
            "contentType": "application/octet-stream",
            "contentLength": size,
            "eTag": "0x8D4BCC2E4835CD0",
            "blobType": "BlockBlob",
            "url": f"https://acct.blob.core.windows.net/{container}/{name}",
        },
        "dataVersion": "",
        "metadataVersion": "1",
    }


def validation_event(code: str) -> dict[str, Any]:
    return {
        "id": str(uuid.uuid4()),
        "topic": "/subscriptions/0000/resourceGroups/rg/providers/Microsoft.Storage/storageAccounts/acct",
        "subject": "",
        "eventType": "Microsoft.EventGrid.SubscriptionValidationEvent",
        "eventTime": "2024-05-01T12:00:00.0000000Z",
        "data": {"validationCode": code, "validationUrl": "https://rp-eastus2.eventgrid.azure.net/validate"},
        "dataVersion": "2",
        "metadataVersion": "1",
    }


@pytest.fixture(scope="session")
def emulator(logs_dir: Path) -> Iterator[Emulator]:
    with azurite(logs_dir) as running:
        yield running


@pytest.fixture(scope="session")
def store(emulator: Emulator) -> AzureStore:
    return AzureStore(emulator.endpoint)
