"""Settings every connector shares (env prefix ``DSXCONNECTOR_``, nested with ``__``; SPEC §9).

A connector subclasses :class:`ConnectorSettings`, sets its ``name`` and ``port`` defaults, adds
its storage's own settings, and exposes a cached ``get_settings()`` built with
``shared.settings.load_settings`` so a bad value stops the service naming the variable.

| variable | meaning |
| --- | --- |
| ``DSX_CONNECT_URL`` | the core, e.g. ``http://dsx-connect-api:8586`` (a trailing API prefix is dropped) |
| ``CONNECTOR_URL`` | this connector as the core reaches it, route prefix included; without a path, ``/{name}`` is appended (1.x style); default ``http://127.0.0.1:{PORT}/{NAME}`` |
| ``NAME``, ``PORT``, ``DISPLAY_NAME`` | identity; the routes live under ``/{NAME}`` |
| ``UUID`` | stable id; default uuid5 of name, asset and connector URL, so a restart is the same connector |
| ``ASSET``, ``ASSET_DISPLAY_NAME``, ``FILTER`` | what to scan (filter syntax: ``shared.connector.filters``) |
| ``ITEM_ACTION``, ``ITEM_ACTION_MOVE_METAINFO`` | action on malicious items and the quarantine destination |
| ``MONITOR`` | watch the asset for changes and submit them |
| ``USE_TLS``, ``TLS_CERTFILE``, ``TLS_KEYFILE`` | serve HTTPS (``python -m connectors.<name> serve``) |
| ``VERIFY_TLS``, ``CA_BUNDLE`` | TLS checks of calls to the core |
| ``ENROLLMENT_TOKEN`` (1.x: ``DSXCONNECT_ENROLLMENT_TOKEN``), ``AUTH__ENABLED`` (true), ``AUTH__HMAC_KEY_ID``, ``AUTH__HMAC_SECRET`` | enrollment and DSX-HMAC both ways (SPEC §8, ``shared.connector.security``) |
| ``MAX_REQUEST_BYTES`` | larger request bodies answer 413 (16 MiB) |
| ``WEBHOOK__SECRET``, ``WEBHOOK__VERIFY`` | who may post ``/webhook/event`` (``shared.connector.webhook_auth``) |
| ``HEARTBEAT_INTERVAL_S`` | re-registration period (60) |
| ``SCAN_BATCH_SIZE`` | override the core's batch size for submissions |
| ``FULL_SCAN_ENQUEUE_CONCURRENCY`` | parallel single submissions when the core has batching off (1.x name) |
| ``FULL_SCAN_BATCHES_IN_FLIGHT`` | batches a full scan submits at once while it lists the next (2) |
| ``REQUEST_TIMEOUT_S``, ``SUBMIT_RETRY_MAX_S`` | control-plane timeout; how long a submission is retried before the scan gives up |
| ``JOB_CONTROL_EVERY_BATCHES``, ``JOB_CONTROL_POLL_S`` | how often a full scan reads its job's pause/cancel flags, and polls while paused |
"""

from __future__ import annotations

import uuid as uuid_mod
from pathlib import Path
from typing import Any, ClassVar
from urllib.parse import urlsplit

from pydantic import (
    AliasChoices,
    BaseModel,
    Field,
    SecretStr,
    ValidationInfo,
    field_validator,
    model_validator,
)
from pydantic_settings import BaseSettings, SettingsConfigDict

from shared.connector.filters import Filter
from shared.connector.webhook_auth import WebhookSettings
from shared.models import ItemActionType

CORE_API_PREFIX = "/dsx-connect/api/v1"

ALL_ACTIONS = frozenset(
    {
        ItemActionType.NOTHING,
        ItemActionType.DELETE,
        ItemActionType.MOVE,
        ItemActionType.TAG,
        ItemActionType.MOVE_TAG,
    }
)

#: fields ``PUT /config`` may change at run time
UPDATABLE_FIELDS = ("asset", "filter", "item_action", "item_action_move_metainfo")


class AuthSettings(BaseModel):
    """DSX-HMAC (``DSXCONNECTOR_AUTH__*``, the 1.x names): on by default; ``enabled=false`` only
    against a core running with ``DSXCONNECT_AUTH__ENABLED=false``. The pair is normally issued at
    enrollment (``ENROLLMENT_TOKEN``); ``HMAC_KEY_ID``/``HMAC_SECRET`` seed it until then."""

    enabled: bool = True
    hmac_key_id: str | None = None
    hmac_secret: SecretStr | None = None
    #: signed calls remembered inside the 120 s replay window; past it, calls answer 503 (never a replay)
    nonce_capacity: int = Field(default=200_000, ge=100, le=10_000_000)
    #: keep the pair in this file (mode 0600) so a restarted connector signs its first heartbeat
    key_file: str | None = None


class ConnectorSettings(BaseSettings):
    """Settings of one connector process; subclass it per storage."""

    model_config = SettingsConfigDict(
        env_prefix="DSXCONNECTOR_",
        env_nested_delimiter="__",
        extra="ignore",
        populate_by_name=True,
        validate_default=True,
    )

    #: actions this connector can apply; ``ITEM_ACTION`` and ``PUT /config`` are checked against it
    supported_actions: ClassVar[frozenset[ItemActionType]] = ALL_ACTIONS

    name: str = Field(default="connector", min_length=1, max_length=100, pattern=r"^[a-z0-9][a-z0-9._-]*$")
    display_name: str = ""
    port: int = Field(default=8620, ge=1, le=65535)
    dsx_connect_url: str = "http://127.0.0.1:8586"
    connector_url: str = ""
    uuid: str = Field(default="", pattern=r"^([A-Za-z0-9._-]{1,64})?$")  # the core's (empty: derived)

    asset: str = ""
    asset_display_name: str = ""
    filter: str = ""
    item_action: ItemActionType = ItemActionType.NOTHING
    item_action_move_metainfo: str = "dsxconnect-quarantine"
    monitor: bool = False

    use_tls: bool = False
    tls_certfile: str | None = None
    tls_keyfile: str | None = None
    verify_tls: bool = True
    ca_bundle: str | None = None
    enrollment_token: SecretStr | None = Field(
        default=None,
        validation_alias=AliasChoices("DSXCONNECTOR_ENROLLMENT_TOKEN", "DSXCONNECT_ENROLLMENT_TOKEN"),
    )
    auth: AuthSettings = Field(default_factory=AuthSettings)
    webhook: WebhookSettings = Field(default_factory=WebhookSettings)

    heartbeat_interval_s: float = Field(default=60.0, gt=0, le=3600)
    scan_batch_size: int | None = Field(default=None, ge=1, le=5000)
    full_scan_enqueue_concurrency: int = Field(default=8, ge=1, le=256)
    full_scan_batches_in_flight: int = Field(default=2, ge=1, le=16)
    request_timeout_s: float = Field(default=30.0, gt=0)
    max_request_bytes: int = Field(default=16 << 20, ge=1024, description="larger request bodies answer 413")
    submit_retry_max_s: float = Field(default=600.0, gt=0)
    job_control_every_batches: int = Field(default=4, ge=1)
    job_control_poll_s: float = Field(default=1.0, gt=0)
    log_level: str = "INFO"

    @field_validator("dsx_connect_url", "connector_url")
    @classmethod
    def _http_url(cls, value: str) -> str:
        value = value.strip().rstrip("/")
        if value and (urlsplit(value).scheme not in ("http", "https") or not urlsplit(value).netloc):
            raise ValueError("must be an http(s) URL such as http://host:port")
        return value

    @field_validator("dsx_connect_url")
    @classmethod
    def _drop_api_prefix(cls, value: str) -> str:
        return value.removesuffix(CORE_API_PREFIX) if value else "http://127.0.0.1:8586"

    @field_validator("filter")
    @classmethod
    def _valid_filter(cls, value: str) -> str:
        Filter.parse(value)
        return value.strip()

    @field_validator("item_action")
    @classmethod
    def _supported_action(cls, value: ItemActionType) -> ItemActionType:
        if value not in cls.supported_actions:
            allowed = "|".join(sorted(a.value for a in cls.supported_actions))
            raise ValueError(f"{value.value!r} is not supported by this connector (use {allowed})")
        return value

    @field_validator("ca_bundle", "tls_certfile", "tls_keyfile")
    @classmethod
    def _file_exists(cls, value: str | None, info: ValidationInfo) -> str | None:
        if value and not Path(value).expanduser().is_file():
            raise ValueError("file does not exist")
        if not value and info.field_name != "ca_bundle" and info.data.get("use_tls"):
            raise ValueError("required when USE_TLS is true")
        return str(Path(value).expanduser()) if value else None

    @model_validator(mode="after")
    def _derive_identity(self) -> ConnectorSettings:
        if not self.connector_url:
            scheme = "https" if self.use_tls else "http"
            self.connector_url = f"{scheme}://127.0.0.1:{self.port}/{self.name}"
        elif urlsplit(self.connector_url).path in ("", "/"):
            self.connector_url = f"{self.connector_url}/{self.name}"
        if not self.uuid:
            seed = f"dsx-connect|{self.name}|{self.asset}|{self.connector_url}"
            self.uuid = str(uuid_mod.uuid5(uuid_mod.NAMESPACE_URL, seed))
        return self

    @property
    def route_prefix(self) -> str:
        """Where the connector's SPEC §5 routes are mounted: ``/{name}``."""
        return f"/{self.name}"

    def parsed_filter(self) -> Filter:
        return Filter.parse(self.filter)

    def redacted(self) -> dict[str, Any]:
        """The settings as JSON, with every secret replaced by ``"***"`` (or null when unset)."""
        data = self.model_dump(mode="json")
        _redact(self, data)
        return data

    def updated(self, changes: dict[str, Any]) -> ConnectorSettings:
        """A validated copy with ``changes`` applied (``ValidationError`` on bad values)."""
        data = self.model_dump()
        data.update(changes)
        return type(self).model_validate(data)


def _redact(model: BaseModel, data: dict[str, Any]) -> None:
    for key, value in model:
        if isinstance(value, SecretStr):
            data[key] = "***"
        elif isinstance(value, BaseModel) and isinstance(data.get(key), dict):
            _redact(value, data[key])
        elif value is not None and any(word in key for word in ("secret", "token", "password")):
            data[key] = "***"
