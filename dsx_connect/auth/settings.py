"""Security settings of the core (``DSXCONNECT_AUTH__*``, SPEC §8/§9).

| variable | default | meaning |
| --- | --- | --- |
| ``AUTH__ENABLED`` | true | enrollment, DSX-HMAC and operator keys; ``false`` turns every check off (logged as a warning) |
| ``AUTH__ENROLLMENT_TOKENS`` | – | tokens connectors register with (CSV or JSON list; several at once for rotation); 1.x: ``AUTH__ENROLLMENT_TOKEN`` |
| ``AUTH__API_KEYS`` | – | operator keys for the dashboard and the operator endpoints (CSV or JSON list) |
| ``AUTH__SERVER_KEY`` | – | the key connector secrets are derived from; unset: generated once and kept in Redis |
| ``AUTH__HMAC_SKEW_S`` | 60 | largest clock difference a DSX-HMAC timestamp may show (nonces are kept ``2 * skew + 60`` s) |
| ``AUTH__KEY_ROTATION_GRACE_S`` | 900 | how long a connector's previous key stays valid after a rotation |
| ``AUTH__SESSION_TTL_S`` | 43200 | lifetime of a dashboard login session |
| ``AUTH__SESSION_COOKIE_SECURE`` | auto | ``Secure`` cookie flag; unset: set when the request came over HTTPS |
| ``AUTH__ALLOW_FLEET_REENROLL`` | false | migration only: a fleet-wide token may re-register an existing uuid and receive its pair (1.x behaviour); warned at every start |
| ``AUTH__LOGIN_ATTEMPTS_PER_MIN`` | 10 | failed ``/auth/login`` attempts per source address and minute before 429 |
| ``AUTH__FAILED_SIGNATURES_PER_MIN`` | 60 | refused DSX-HMAC signatures per minute before a refused one answers 429: guesses (unknown key id, malformed) per source address, failures with a known key per source address and key id; a verified signature always passes |
"""

from __future__ import annotations

import ipaddress
import json
from typing import Annotated, Any

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    SecretStr,
    field_validator,
    model_validator,
)
from pydantic_settings import NoDecode

SecretList = Annotated[list[SecretStr], NoDecode]


def split_secrets(value: Any) -> Any:
    """A CSV string or a JSON list (``'["a","b"]'``) into a list; blanks dropped."""
    if isinstance(value, SecretStr):
        value = value.get_secret_value()
    if isinstance(value, str):
        text = value.strip()
        if text.startswith("["):
            try:
                value = json.loads(text)
            except ValueError:
                raise ValueError(
                    "not a valid JSON list (use a JSON list or comma-separated values)"
                ) from None
        else:
            value = text.split(",")
    if isinstance(value, list | tuple):
        items = [v.get_secret_value() if isinstance(v, SecretStr) else str(v) for v in value]
        return [item.strip() for item in items if item.strip()]
    return value


def _networks(value: Any) -> Any:
    if isinstance(value, str):
        text = value.strip()
        try:
            value = (
                json.loads(text)
                if text.startswith("[")
                else [i.strip() for i in text.split(",") if i.strip()]
            )
        except ValueError:
            raise ValueError("not a valid JSON list (use a JSON list or comma-separated CIDRs)") from None
    if not isinstance(value, list | tuple):
        return value
    networks = []
    for item in value:
        try:
            networks.append(ipaddress.ip_network(item) if isinstance(item, str) else item)
        except ValueError as exc:
            raise ValueError(f"{item!r} is not a network in CIDR form ({exc})") from None
    return networks


#: a CIDR list from CSV or JSON (``10.0.0.0/8,fd12::/16``); host bits must be zero
NetworkList = Annotated[
    list[ipaddress.IPv4Network | ipaddress.IPv6Network], NoDecode, BeforeValidator(_networks)
]


class AuthSettings(BaseModel):
    """Enrollment, DSX-HMAC and operator authentication (on unless explicitly turned off)."""

    model_config = ConfigDict(extra="ignore")

    enabled: bool = True
    enrollment_tokens: SecretList = Field(default_factory=list)
    enrollment_token: SecretStr | None = Field(default=None, exclude=True)  # 1.x single-token name
    api_keys: SecretList = Field(default_factory=list)
    server_key: SecretStr | None = None
    hmac_skew_s: int = Field(default=60, ge=5, le=600)
    key_rotation_grace_s: int = Field(default=900, ge=0, le=30 * 86400)
    session_ttl_s: int = Field(default=12 * 3600, ge=60, le=30 * 86400)
    session_cookie_secure: bool | None = None
    allow_fleet_reenroll: bool = False
    login_attempts_per_min: int = Field(default=10, ge=1, le=10_000)
    failed_signatures_per_min: int = Field(default=60, ge=1, le=1_000_000)

    @field_validator("enrollment_tokens", "api_keys", mode="before")
    @classmethod
    def _split(cls, value: Any) -> Any:
        return split_secrets(value)

    @field_validator("enrollment_tokens", "api_keys")
    @classmethod
    def _long_enough(cls, value: list[SecretStr]) -> list[SecretStr]:
        if any(len(v.get_secret_value()) < 16 for v in value):
            raise ValueError("every value must be at least 16 characters (use `openssl rand -hex 24`)")
        return value

    @field_validator("server_key", "enrollment_token", mode="before")
    @classmethod
    def _blank_is_unset(cls, value: Any) -> Any:
        return None if isinstance(value, str) and not value.strip() else value

    @model_validator(mode="after")
    def _fold_single_token(self) -> AuthSettings:
        if self.enrollment_token is not None:
            known = {t.get_secret_value() for t in self.enrollment_tokens}
            if self.enrollment_token.get_secret_value() not in known:
                self.enrollment_tokens.append(self.enrollment_token)
        return self

    def secret_values(self) -> list[str]:
        """Every secret held here (for the log redaction filter)."""
        values = [s.get_secret_value() for s in (*self.enrollment_tokens, *self.api_keys)]
        if self.server_key is not None:
            values.append(self.server_key.get_secret_value())
        return values

    def missing(self) -> list[str]:
        """The variables a core with auth on cannot work without."""
        if not self.enabled:
            return []
        names = []
        if not self.enrollment_tokens:
            names.append("DSXCONNECT_AUTH__ENROLLMENT_TOKENS")
        if not self.api_keys:
            names.append("DSXCONNECT_AUTH__API_KEYS")
        return names
