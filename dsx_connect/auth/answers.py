"""Response models of the operator login and credential-control routes (``dsx_connect/auth/api.py``).

They keep the JSON field names these routes answered before they had models; times are Unix seconds.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field


class LoginAnswer(BaseModel):
    """``POST /auth/login``: the session cookie is set (or auth is off)."""

    status: Literal["success"] = "success"
    message: str
    auth_enabled: bool


class LogoutAnswer(BaseModel):
    """``POST /auth/logout``."""

    status: Literal["success"] = "success"
    message: str


class SessionState(BaseModel):
    """``GET /auth/session``: whether auth is on and this browser holds a valid session."""

    auth_enabled: bool
    authenticated: bool


class ConnectorKeys(BaseModel):
    """One connector's key id and dates (never a secret)."""

    uuid: str
    name: str | None
    key_id: str | None = Field(description="the current key id; null when it never enrolled or is revoked")
    key_created: float | None
    key_delivered: bool = Field(description="the connector received the current pair")
    previous_key_id: str | None
    previous_valid_until: float | None
    revoked: bool
    revoked_at: float | None


class KeyRotated(BaseModel):
    """``POST /auth/connectors/{uuid}/rotate``: the new key's id (the secret goes to the connector)."""

    status: Literal["success"] = "success"
    message: str
    key_id: str


class IdentityChanged(BaseModel):
    """Revoke, reinstate, reset of a connector identity, and revoking an enrollment token."""

    status: Literal["success"] = "success"
    message: str
    id: str = Field(description="the connector uuid, or the token id")


class EnrollmentTokenInfo(BaseModel):
    """A scoped enrollment token (never the token itself): its binding, label and dates."""

    id: str
    connector_name: str | None
    connector_uuid: str | None
    label: str | None
    created: float | None
    expires_at: float | None


class MintedToken(EnrollmentTokenInfo):
    """``POST /auth/enrollment-tokens`` (201): the token, shown in this answer only."""

    status: Literal["success"] = "success"
    message: str
    token: str = Field(description="the enrollment token; store it now")
