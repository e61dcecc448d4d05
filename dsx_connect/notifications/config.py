"""``DSXCONNECT_NOTIFICATIONS__*``: the webhooks, their buffers and retries."""

from __future__ import annotations

import base64
import binascii
import hashlib
import ipaddress
import json
from typing import Annotated, Any
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationInfo, field_validator
from pydantic_settings import NoDecode

from dsx_connect.auth.urls import METADATA_ADDRESSES, METADATA_HOSTS, _embedded_ipv4, _literal

VERDICTS = ("Benign", "Malicious", "Unknown", "Unsupported File Type", "Not Scanned", "Non Compliant")
SECRET_PREFIX = "whsec_"
MIN_SECRET_BYTES = 16


def secret_key(secret: str) -> bytes:
    """The signing key of a Standard Webhooks secret: the base64 after an optional ``whsec_`` prefix."""
    text = secret.removeprefix(SECRET_PREFIX)
    try:
        key = base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        raise ValueError(
            "secret must be base64 (optionally prefixed whsec_), as Standard Webhooks defines"
        ) from None
    if len(key) < MIN_SECRET_BYTES:
        raise ValueError(f"secret must decode to at least {MIN_SECRET_BYTES} bytes (got {len(key)})")
    return key


def webhook_url_problem(url: str, allow_link_local: bool = False) -> str | None:
    """Why ``url`` may not receive webhooks (the SSRF rules of connector URLs), or None when it may."""
    try:
        parts = urlsplit(url)
        host = (parts.hostname or "").lower().rstrip(".")
        parts.port  # noqa: B018 - raises on a bad port
    except ValueError:
        return "not a valid URL"
    if parts.scheme not in ("http", "https") or not host:
        return "must be an http(s) URL"
    if parts.username is not None or parts.password is not None:
        return "must not carry credentials (the secret signs each call)"
    address = _literal(host)
    if address is not None and (address.is_unspecified or address.is_multicast):
        return f"names an address no receiver can have ({address})"
    # an IPv6 form embedding an IPv4 address (::ffff:169.254.169.254) is judged by what it embeds too
    inner = _embedded_ipv4(address) if isinstance(address, ipaddress.IPv6Address) else None
    metadata = any(a is not None and (a.is_link_local or a in METADATA_ADDRESSES) for a in (address, inner))
    if not allow_link_local and (metadata or host in METADATA_HOSTS):
        return (
            f"points at a link-local or cloud metadata address ({host}); "
            "set DSXCONNECT_NOTIFICATIONS__ALLOW_LINK_LOCAL=true if a receiver really lives there"
        )
    return None


SHOWN_SEGMENT_MAX = 20  # a longer first path segment may itself be the token


def shown_url(url: str) -> str:
    """``url`` without what may carry a token: scheme, host and port, the first path segment (when
    short), then ``/…`` for the rest of the path and ``?…`` for a query. Zapier, n8n, Discord, Slack
    put the token in the path (``https://discord.com/api/webhooks/<id>/<token>`` shows as
    ``https://discord.com/api/…``); never any user info."""
    try:
        parts = urlsplit(url)
        host = parts.hostname or ""
        port = parts.port
    except ValueError:
        return "(an invalid URL)"
    if ":" in host:
        host = f"[{host}]"
    shown = f"{parts.scheme}://{host}" + (f":{port}" if port is not None else "")
    segments = [segment for segment in parts.path.split("/") if segment]
    if segments:
        first = segments[0]
        if len(first) > SHOWN_SEGMENT_MAX:
            shown += "/…"
        else:
            shown += f"/{first}" + ("/…" if len(segments) > 1 else "")
    if parts.query or parts.fragment:
        shown += "?…"
    return shown


class WebhookSettings(BaseModel):
    """One receiver: its URL, its Standard Webhooks secret and, optionally, the verdicts it wants."""

    model_config = ConfigDict(extra="forbid")

    url: str
    secret: SecretStr = Field(description="base64, optionally prefixed whsec_ (Standard Webhooks)")
    verdicts: list[str] | None = Field(
        default=None, description="only events with these verdicts; all when unset"
    )

    @field_validator("secret")
    @classmethod
    def _secret_decodes(cls, value: SecretStr) -> SecretStr:
        secret_key(value.get_secret_value())
        return value

    @field_validator("verdicts")
    @classmethod
    def _known_verdicts(cls, value: list[str] | None) -> list[str] | None:
        unknown = [v for v in value or () if v not in VERDICTS]
        if unknown:
            raise ValueError(f"unknown verdicts {unknown}: use {', '.join(VERDICTS)}")
        return value

    @property
    def destination(self) -> str:
        """The buffer's name: stable for one URL across restarts and reorderings of the list."""
        return "webhook-" + hashlib.sha256(self.url.encode()).hexdigest()[:12]

    @property
    def shown_url(self) -> str:
        """The URL as config, stats, logs and errors show it (:func:`shown_url`)."""
        return shown_url(self.url)

    def wants(self, verdict: str | None) -> bool:
        return self.verdicts is None or verdict in self.verdicts


class NotificationsSettings(BaseModel):
    """``DSXCONNECT_NOTIFICATIONS__*``."""

    model_config = ConfigDict(extra="ignore")

    allow_link_local: bool = False  # before ``webhooks``: their check reads it
    webhooks: Annotated[list[WebhookSettings], NoDecode] = Field(
        default_factory=list,
        description='JSON list of {"url", "secret", "verdicts"?}, e.g. [{"url": "https://siem/hook", '
        '"secret": "whsec_…", "verdicts": ["Malicious"]}]',
    )
    buffer_max_events: int = Field(default=10_000, ge=1, le=1_000_000, description="per webhook")
    timeout_s: float = Field(default=10.0, gt=0, le=120)
    retry_backoff_s: float = Field(default=1.0, gt=0)
    retry_backoff_max_s: float = Field(default=60.0, gt=0)
    verify_tls: bool = True
    ca_bundle: str | None = None

    @field_validator("webhooks", mode="before")
    @classmethod
    def _json(cls, value: Any) -> Any:
        if isinstance(value, str):
            text = value.strip()
            return json.loads(text) if text else []
        return value

    @field_validator("webhooks")
    @classmethod
    def _safe_urls(cls, hooks: list[WebhookSettings], info: ValidationInfo) -> list[WebhookSettings]:
        urls = [hook.url for hook in hooks]
        if len(set(urls)) != len(urls):
            raise ValueError("a URL is listed twice")
        for index, hook in enumerate(hooks):
            problem = webhook_url_problem(hook.url, bool(info.data.get("allow_link_local")))
            if problem:
                raise ValueError(f"webhooks[{index}] url {hook.shown_url!r} {problem}")
        return hooks

    @property
    def destinations(self) -> list[str]:
        return [hook.destination for hook in self.webhooks]
