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
| ``GCS_PUSH_SERVICE_ACCOUNTS`` | – | CSV of the service-account emails whose Pub/Sub push tokens are accepted; none: every push is refused |
| ``GCS_PUSH_AUDIENCE`` | ``{CONNECTOR_URL}/webhook/event`` | the ``aud`` the push tokens must carry (the subscription's audience) |
| ``GCS_PUSH_JWKS_URL`` | ``https://www.googleapis.com/oauth2/v3/certs`` | Google's signing keys (tests serve their own) |
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Annotated, Any

from pydantic import AliasChoices, Field, field_validator, model_validator
from pydantic_settings import NoDecode

from connectors.google_cloud_storage.manifest import MANIFEST
from connectors.google_cloud_storage.pubsub_auth import GOOGLE_JWKS_URL
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
    gcs_push_service_accounts: Annotated[list[str], NoDecode] = Field(default_factory=list)
    gcs_push_audience: str = ""
    gcs_push_jwks_url: str = GOOGLE_JWKS_URL

    @field_validator("gcs_push_service_accounts", mode="before")
    @classmethod
    def _csv(cls, value: Any) -> Any:
        if isinstance(value, str):
            return [part.strip() for part in value.split(",") if part.strip()]
        return value

    @field_validator("gcs_push_jwks_url")
    @classmethod
    def _jwks_url(cls, value: str) -> str:
        if not value.startswith(("https://", "http://")):
            raise ValueError("must be an http(s) URL")
        return value

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
        if not self.gcs_push_audience:
            self.gcs_push_audience = f"{self.connector_url}/webhook/event"
        return self

    def layout(self) -> BucketLayout:
        """The asset and quarantine (``ValueError`` if the quarantine is the asset or holds it)."""
        return BucketLayout.build(self.asset, self.item_action_move_metainfo, self.gcs_quarantine_bucket)


@lru_cache
def get_settings() -> GoogleCloudStorageSettings:
    """The process's settings, read once from the environment (exits naming a bad variable)."""
    return load_settings(GoogleCloudStorageSettings)
