"""Settings of the Azure Blob Storage connector (``DSXCONNECTOR_*``; shared ones in ``shared.connector.settings``).

| variable | default | meaning |
| --- | --- | --- |
| ``ASSET`` | (required) | ``container`` or ``container/prefix`` |
| ``ITEM_ACTION_MOVE_METAINFO`` | ``dsxconnect-quarantine`` | quarantine name prefix (in ``AZURE_QUARANTINE_CONTAINER``, else in the asset's container) |
| ``AZURE_QUARANTINE_CONTAINER`` | – | move quarantined blobs to this container instead of the asset's |
| ``AZURE_CONNECTION_STRING`` (1.x: ``AZURE_STORAGE_CONNECTION_STRING``) | – | a full connection string (account key or SAS); wins over the rest |
| ``AZURE_ACCOUNT_URL`` | – | ``https://<account>.blob.core.windows.net``, or an emulator's ``http://127.0.0.1:10000/devstoreaccount1`` |
| ``AZURE_ACCOUNT_NAME`` (``AZURE_STORAGE_ACCOUNT_NAME``) | – | the account; gives the URL when ``AZURE_ACCOUNT_URL`` is unset |
| ``AZURE_ACCOUNT_KEY`` (``AZURE_STORAGE_ACCOUNT_KEY``), ``AZURE_SAS_TOKEN`` | – | explicit credentials; unset: ``DefaultAzureCredential`` (environment, workload or managed identity, Azure CLI) |
| ``AZURE_TAG_MODE`` | ``index`` | ``tag`` writes blob index tags (``index``) or blob metadata (``metadata``: for accounts without index tags, e.g. with hierarchical namespace) |
| ``AZURE_LIST_PAGE_SIZE`` | 1000 | blobs per listing page |
| ``AZURE_COPY_TIMEOUT_S`` | 300 | how long a move waits for a server-side copy to finish |
"""

from __future__ import annotations

from functools import lru_cache
from typing import Literal

from pydantic import AliasChoices, Field, SecretStr, field_validator, model_validator

from connectors.azure_blob_storage.manifest import MANIFEST
from shared.connector.buckets import BucketAsset, BucketConnectorSettings, BucketLayout, http_url
from shared.settings import load_settings


class AzureBlobStorageSettings(BucketConnectorSettings):
    """``ASSET`` is ``container`` or ``container/prefix``; set a connection string, an account URL or name."""

    name: str = MANIFEST.name
    port: int = MANIFEST.port

    azure_quarantine_container: str | None = None
    azure_connection_string: SecretStr | None = Field(
        default=None,
        validation_alias=AliasChoices(
            "DSXCONNECTOR_AZURE_CONNECTION_STRING", "AZURE_STORAGE_CONNECTION_STRING"
        ),
    )
    azure_account_url: str | None = None
    azure_account_name: str | None = Field(
        default=None,
        validation_alias=AliasChoices("DSXCONNECTOR_AZURE_ACCOUNT_NAME", "AZURE_STORAGE_ACCOUNT_NAME"),
    )
    azure_account_key: SecretStr | None = Field(
        default=None,
        validation_alias=AliasChoices("DSXCONNECTOR_AZURE_ACCOUNT_KEY", "AZURE_STORAGE_ACCOUNT_KEY"),
    )
    azure_sas_token: SecretStr | None = None
    azure_tag_mode: Literal["index", "metadata"] = "index"
    azure_list_page_size: int = Field(default=1000, ge=1, le=5000)
    azure_copy_timeout_s: float = Field(default=300.0, gt=0)

    @field_validator("asset")
    @classmethod
    def _container_asset(cls, value: str) -> str:
        return str(BucketAsset.parse(value, "container"))

    @field_validator("azure_account_url")
    @classmethod
    def _account_url(cls, value: str | None) -> str | None:
        return http_url(value, "https://myaccount.blob.core.windows.net")

    @model_validator(mode="after")
    def _account(self) -> AzureBlobStorageSettings:
        self.layout()
        if not (self.azure_connection_string or self.azure_account_url or self.azure_account_name):
            raise ValueError(
                "set DSXCONNECTOR_AZURE_CONNECTION_STRING, DSXCONNECTOR_AZURE_ACCOUNT_URL "
                "or DSXCONNECTOR_AZURE_ACCOUNT_NAME"
            )
        return self

    def layout(self) -> BucketLayout:
        """The asset and quarantine (``ValueError`` if the quarantine is the asset or holds it)."""
        # urllib3 resolves "./" in the blob URL: "./q/x" would be the blob "q/x" (the quarantine)
        return BucketLayout.build(
            self.asset,
            self.item_action_move_metainfo,
            self.azure_quarantine_container,
            "container",
            refused_segments=frozenset({"."}),
        )

    def account_url(self) -> str:
        """``AZURE_ACCOUNT_URL``, else the public endpoint of ``AZURE_ACCOUNT_NAME``."""
        return self.azure_account_url or f"https://{self.azure_account_name}.blob.core.windows.net"


@lru_cache
def get_settings() -> AzureBlobStorageSettings:
    """The process's settings, read once from the environment (exits naming a bad variable)."""
    return load_settings(AzureBlobStorageSettings)
