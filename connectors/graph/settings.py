"""Settings every Graph drive connector shares (``DSXCONNECTOR_*``; the connector's own resolve its drive).

| variable | default | meaning |
| --- | --- | --- |
| ``ASSET`` | ``""`` (the whole drive) | a folder path inside the drive, e.g. ``Incoming/Scans`` |
| ``ITEM_ACTION_MOVE_METAINFO`` | ``dsxconnect-quarantine`` | quarantine folder of the drive (created when missing) |
| ``SP_TENANT_ID`` (1.x: ``SP_TENANT_ID``) | (required) | the Entra tenant (id or domain) |
| ``SP_CLIENT_ID`` (1.x: ``SP_CLIENT_ID``) | (required) | the app registration's client id |
| ``SP_CLIENT_SECRET`` (1.x: ``SP_CLIENT_SECRET``) | – | a client secret, or: |
| ``SP_CLIENT_CERT_PATH``, ``SP_CLIENT_CERT_PASSWORD`` | – | a PEM holding the certificate and its private key |
| ``GRAPH_DRIVE_ID`` | – | the drive, by id (instead of the connector's own way to find it) |
| ``GRAPH_BASE_URL`` | ``https://graph.microsoft.com`` | Graph host (national clouds: ``https://graph.microsoft.us``, ``https://microsoftgraph.chinacloudapi.cn``) |
| ``GRAPH_LOGIN_HOST`` | ``https://login.microsoftonline.com`` | Entra login host (``https://login.microsoftonline.us``, ``https://login.chinacloudapi.cn``) |
| ``GRAPH_CA_BUNDLE`` | – | CA file to verify Graph and the login host (a TLS-inspecting proxy) |
| ``GRAPH_PAGE_SIZE`` | 500 | items per delta page (``$top``) |
| ``GRAPH_INCREMENTAL_SCAN`` | true | a full scan after the first reads only the delta since the previous one |
| ``WEBHOOK_URL`` | – | this connector's ``/webhook/event`` as Graph reaches it (public https): change notifications by subscription; unset: polling |
| ``GRAPH_CLIENT_STATE`` | random per start | the secret Graph echoes in each notification (others are refused with 401) |
| ``GRAPH_SUBSCRIPTION_TTL_S`` | 86400 | a subscription's lifetime; renewed when 80 % of it has passed, deleted at stop |
| ``GRAPH_POLL_INTERVAL_S`` | 60 | with ``MONITOR`` and no ``WEBHOOK_URL``: a delta read every so often |
| ``GRAPH_TAG_FIELD`` | – | ``tag`` writes this list column (SharePoint); unset: the item's description |
| ``GRAPH_MAX_RETRIES``, ``GRAPH_RETRY_MAX_S`` | 6, 60 | 429/503/504 retries, honouring ``Retry-After``, each wait capped |
| ``GRAPH_READ_CHUNK_BYTES`` | 4 MiB | large files are downloaded in ranges of this size |
"""

from __future__ import annotations

import secrets
from pathlib import Path

from pydantic import AliasChoices, Field, SecretStr, field_validator, model_validator

from shared.connector.buckets import BucketConnectorSettings, http_url, key_prefix


def _alias(name: str, *legacy: str) -> AliasChoices:
    return AliasChoices(f"DSXCONNECTOR_{name}", *legacy)


class GraphSettings(BucketConnectorSettings):
    """Credentials, hosts and behaviour of a Graph drive connector."""

    sp_tenant_id: str = Field(default="", validation_alias=_alias("SP_TENANT_ID", "SP_TENANT_ID"))
    sp_client_id: str = Field(default="", validation_alias=_alias("SP_CLIENT_ID", "SP_CLIENT_ID"))
    sp_client_secret: SecretStr | None = Field(
        default=None, validation_alias=_alias("SP_CLIENT_SECRET", "SP_CLIENT_SECRET")
    )
    sp_client_cert_path: str | None = None
    sp_client_cert_password: SecretStr | None = None
    graph_drive_id: str | None = None
    graph_base_url: str = "https://graph.microsoft.com"
    graph_login_host: str = "https://login.microsoftonline.com"
    graph_ca_bundle: str | None = None
    graph_page_size: int = Field(default=500, ge=1, le=1000)
    graph_incremental_scan: bool = True
    webhook_url: str | None = None
    graph_client_state: SecretStr = Field(default_factory=lambda: SecretStr(secrets.token_urlsafe(32)))
    graph_subscription_ttl_s: float = Field(default=86400.0, ge=60, le=41760 * 60)
    graph_poll_interval_s: float = Field(default=60.0, gt=0)
    graph_tag_field: str | None = None
    graph_max_retries: int = Field(default=6, ge=0, le=20)
    graph_retry_max_s: float = Field(default=60.0, gt=0)
    graph_read_chunk_bytes: int = Field(default=4 << 20, ge=64 << 10)

    @field_validator("asset")
    @classmethod
    def _folder(cls, value: str) -> str:
        return key_prefix(value).rstrip("/")

    @field_validator("graph_base_url", "graph_login_host")
    @classmethod
    def _host(cls, value: str) -> str:
        url = http_url(value, "https://graph.microsoft.com")
        if not url or not url.startswith("https://"):
            raise ValueError("must be an https URL (Microsoft's hosts, a national cloud, or a fake)")
        return url

    @field_validator("webhook_url")
    @classmethod
    def _webhook(cls, value: str | None) -> str | None:
        return http_url(value, "https://scanner.example.com/sharepoint-connector/webhook/event")

    @field_validator("sp_client_cert_path", "graph_ca_bundle")
    @classmethod
    def _file(cls, value: str | None) -> str | None:
        if value and not Path(value).expanduser().is_file():
            raise ValueError("file does not exist")
        return str(Path(value).expanduser()) if value else None

    @model_validator(mode="after")
    def _credentials(self) -> GraphSettings:
        if not self.sp_tenant_id or not self.sp_client_id:
            raise ValueError("set DSXCONNECTOR_SP_TENANT_ID and DSXCONNECTOR_SP_CLIENT_ID (the Entra app)")
        if not self.sp_client_secret and not self.sp_client_cert_path:
            raise ValueError("set DSXCONNECTOR_SP_CLIENT_SECRET or DSXCONNECTOR_SP_CLIENT_CERT_PATH")
        quarantine = key_prefix(self.item_action_move_metainfo)
        if quarantine and (self.asset + "/").startswith(quarantine):
            raise ValueError(
                "the quarantine folder (ITEM_ACTION_MOVE_METAINFO) cannot be the asset or contain it"
            )
        return self

    @property
    def api_url(self) -> str:
        """Graph's v1.0 endpoint."""
        return f"{self.graph_base_url}/v1.0"
