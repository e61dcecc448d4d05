"""Settings of the Google Cloud Storage connector (``DSXCONNECTOR_*``; shared ones in ``shared.connector.settings``).

| variable | default | meaning |
| --- | --- | --- |
| ``ASSET`` | (required) | ``bucket`` or ``bucket/prefix`` |
| ``ITEM_ACTION_MOVE_METAINFO`` | ``dsxconnect-quarantine`` | quarantine name prefix (in ``GCS_QUARANTINE_BUCKET``, else in the asset's bucket) |
| ``GCS_QUARANTINE_BUCKET`` | – | move quarantined objects to this bucket instead of the asset's |
| ``GCS_CREDENTIALS_FILE`` (1.x: ``DSXCONNECTOR_GOOGLE_APPLICATION_CREDENTIALS``) | – | a service-account key file; unset: Application Default Credentials (``GOOGLE_APPLICATION_CREDENTIALS``, which also takes workload identity federation files, the metadata server, gcloud) |
| ``GCS_PROJECT`` (``GCP_PROJECT``) | from the credentials | project billed for requests (buckets need none) |
| ``GCS_ENDPOINT_URL`` | – | another endpoint, e.g. an emulator; ``STORAGE_EMULATOR_HOST`` (the SDK's own) works too and implies anonymous access |
| ``GCS_ANONYMOUS`` | false | no credentials at all (emulators, public buckets) |
| ``GCS_LIST_PAGE_SIZE`` | 1000 | objects per listing page |
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

from pydantic import AliasChoices, Field, field_validator, model_validator

from connectors.google_cloud_storage.manifest import MANIFEST
from shared.connector.buckets import BucketAsset, BucketConnectorSettings, BucketLayout, http_url
from shared.settings import load_settings


class GoogleCloudStorageSettings(BucketConnectorSettings):
    """``ASSET`` is ``bucket`` or ``bucket/prefix``; credentials come from ADC unless a key file is given."""

    name: str = MANIFEST.name
    port: int = MANIFEST.port

    gcs_quarantine_bucket: str | None = None
    gcs_credentials_file: str | None = Field(
        default=None,
        validation_alias=AliasChoices(
            "DSXCONNECTOR_GCS_CREDENTIALS_FILE", "DSXCONNECTOR_GOOGLE_APPLICATION_CREDENTIALS"
        ),
    )
    gcs_project: str | None = Field(
        default=None, validation_alias=AliasChoices("DSXCONNECTOR_GCS_PROJECT", "DSXCONNECTOR_GCP_PROJECT")
    )
    gcs_endpoint_url: str | None = None
    gcs_anonymous: bool = False
    gcs_list_page_size: int = Field(default=1000, ge=1, le=1000)

    @field_validator("asset")
    @classmethod
    def _bucket_asset(cls, value: str) -> str:
        return str(BucketAsset.parse(value))

    @field_validator("gcs_credentials_file")
    @classmethod
    def _key_file(cls, value: str | None) -> str | None:
        if value and not Path(value).expanduser().is_file():
            raise ValueError("file does not exist")
        return str(Path(value).expanduser()) if value else None

    @field_validator("gcs_endpoint_url")
    @classmethod
    def _endpoint(cls, value: str | None) -> str | None:
        return http_url(value, "http://127.0.0.1:9023")

    @model_validator(mode="after")
    def _layout(self) -> GoogleCloudStorageSettings:
        self.layout()
        return self

    def layout(self) -> BucketLayout:
        """The asset and quarantine (``ValueError`` if the quarantine is the asset or holds it)."""
        return BucketLayout.build(self.asset, self.item_action_move_metainfo, self.gcs_quarantine_bucket)


@lru_cache
def get_settings() -> GoogleCloudStorageSettings:
    """The process's settings, read once from the environment (exits naming a bad variable)."""
    return load_settings(GoogleCloudStorageSettings)
