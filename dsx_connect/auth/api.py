"""Operator login for the dashboard, and the connector credential controls (SPEC §8).

- ``POST /auth/login`` (``{"api_key"}`` or the key in ``X-API-Key``): sets the ``dsx_session`` cookie
  (HttpOnly, SameSite=Strict, Secure over HTTPS); ``POST /auth/logout`` ends it;
  ``GET /auth/session`` says whether auth is on and whether this browser is logged in.
- ``GET /auth/connectors[/{uuid}]``: key ids and dates of each connector's pair (never a secret).
- ``POST /auth/connectors/{uuid}/rotate``: a new pair; the connector receives it with its next
  registration, the previous one stays valid for ``DSXCONNECT_AUTH__KEY_ROTATION_GRACE_S``.
- ``POST /auth/connectors/{uuid}/revoke``: every key of the connector stops working at once, it is
  unregistered, its stored state (``/connectors/state``) is deleted, and its registrations are
  refused until ``POST .../reinstate``.
- ``POST /auth/connectors/{uuid}/reset``: forget the identity (keys, registration and stored
  state); the next registration with any enrollment token creates it anew.
- ``POST /auth/enrollment-tokens`` (mint a token scoped to a connector name or uuid, optional
  expiry; the token is in this answer only), ``GET /auth/enrollment-tokens``,
  ``DELETE /auth/enrollment-tokens/{id}``.

Failed logins are counted per source address in Redis (every API replica shares the count): past
``DSXCONNECT_AUTH__LOGIN_ATTEMPTS_PER_MIN`` in a minute, ``/auth/login`` answers 429.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Body, Header, HTTPException, Path, Request, Response
from pydantic import BaseModel, Field, model_validator

from dsx_connect.api.deps import RegistryDep, SettingsDep
from dsx_connect.auth.access import OPERATOR_ONLY, Public, refuse_while_blocked
from dsx_connect.auth.answers import (
    ConnectorKeys,
    EnrollmentTokenInfo,
    IdentityChanged,
    KeyRotated,
    LoginAnswer,
    LogoutAnswer,
    MintedToken,
    SessionState,
)
from dsx_connect.auth.deps import ConnectorKeysDep
from dsx_connect.auth.middleware import source_of
from dsx_connect.redis_client import get_redis
from dsx_connect.state.auth_enrollment import EnrollmentTokens
from dsx_connect.state.auth_operators import SESSION_COOKIE, OperatorAuth
from dsx_connect.state.auth_ratelimit import guess_limiter
from dsx_connect.state.connectors import delete_state

router = APIRouter(prefix="/auth", tags=["auth"])
operator = APIRouter(dependencies=[OPERATOR_ONLY])  # everything but login/logout/session

Uuid = Annotated[str, Path(min_length=1, max_length=64)]
TokenId = Annotated[str, Path(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_-]+$")]


class Login(BaseModel):
    api_key: str = Field(min_length=1, max_length=512)


class MintToken(BaseModel):
    """A scoped enrollment token's binding: exactly one of ``connector_name`` / ``connector_uuid``."""

    connector_name: str | None = Field(default=None, min_length=1, max_length=128)
    connector_uuid: str | None = Field(default=None, min_length=1, max_length=64)
    expires_in_s: int | None = Field(default=None, ge=60, le=366 * 86400)
    label: str | None = Field(default=None, max_length=200)

    @model_validator(mode="after")
    def _one_binding(self) -> MintToken:
        if (self.connector_name is None) == (self.connector_uuid is None):
            raise ValueError("give exactly one of connector_name or connector_uuid")
        return self


def _operators(settings: SettingsDep) -> OperatorAuth:
    return OperatorAuth(get_redis(), settings.auth)


@router.post(
    "/login",
    responses={
        401: {"description": "the API key is not valid"},
        429: {"description": "too many failed logins from this address"},
    },
)
def login(
    request: Request,
    response: Response,
    settings: SettingsDep,
    _: Public,
    body: Annotated[Login | None, Body()] = None,
    x_api_key: Annotated[str | None, Header(max_length=512)] = None,
) -> LoginAnswer:
    """Open a dashboard session with an operator API key (sets an HttpOnly cookie)."""
    if not settings.auth.enabled:
        return LoginAnswer(message="authentication is disabled", auth_enabled=False)
    key = (body.api_key if body else None) or x_api_key or ""
    operators = _operators(settings)
    limiter = guess_limiter(get_redis(), settings.auth)
    source = source_of(request.scope)
    refuse_while_blocked(limiter, source, "failed logins")
    if not operators.api_key_ok(key):
        limiter.failed(source)
        raise HTTPException(401, "the API key is not valid")
    secure = settings.auth.session_cookie_secure
    response.set_cookie(
        SESSION_COOKIE,
        operators.open_session(key),
        max_age=settings.auth.session_ttl_s,
        httponly=True,
        samesite="strict",
        secure=request.url.scheme == "https" if secure is None else secure,
        path="/",
    )
    response.headers["Cache-Control"] = "no-store"
    return LoginAnswer(message="logged in", auth_enabled=True)


@router.post("/logout")
def logout(request: Request, response: Response, settings: SettingsDep, _: Public) -> LogoutAnswer:
    """End this browser's session."""
    _operators(settings).close_session(request.cookies.get(SESSION_COOKIE, ""))
    response.delete_cookie(SESSION_COOKIE, path="/", httponly=True, samesite="strict")
    return LogoutAnswer(message="logged out")


@router.get("/session")
def read_session(request: Request, settings: SettingsDep, _: Public) -> SessionState:
    """Whether auth is on and whether this browser holds a valid session."""
    if not settings.auth.enabled:
        return SessionState(auth_enabled=False, authenticated=True)
    return SessionState(
        auth_enabled=True,
        authenticated=_operators(settings).session_ok(request.cookies.get(SESSION_COOKIE, "")),
    )


@operator.get("/connectors")
def list_connector_keys(registry: RegistryDep, credentials: ConnectorKeysDep) -> list[ConnectorKeys]:
    """Each registered connector's key id, its dates, and whether it is revoked (never a secret)."""
    return [
        ConnectorKeys.model_validate(credentials.describe(c.uuid) | {"name": c.name}) for c in registry.list()
    ]


@operator.get("/connectors/{uuid}")
def read_connector_keys(uuid: Uuid, credentials: ConnectorKeysDep) -> ConnectorKeys:
    """One connector's key id, its dates, and whether it is revoked."""
    return ConnectorKeys.model_validate(credentials.describe(uuid))


@operator.post("/connectors/{uuid}/rotate", responses={404: {"description": "no key for this connector"}})
def rotate_connector_key(uuid: Uuid, credentials: ConnectorKeysDep, settings: SettingsDep) -> KeyRotated:
    """Issue a new pair; the connector picks it up from its next registration answer."""
    if credentials.describe(uuid)["key_id"] is None:
        raise HTTPException(404, f"connector {uuid} has no key (it never enrolled, or it is revoked)")
    key_id = credentials.rotate(uuid)
    grace = settings.auth.key_rotation_grace_s
    return KeyRotated(
        message=f"new key issued; the connector receives it at its next registration, the previous key stays valid for {grace} s",
        key_id=key_id,
    )


@operator.post("/connectors/{uuid}/revoke")
def revoke_connector(uuid: Uuid, credentials: ConnectorKeysDep, registry: RegistryDep) -> IdentityChanged:
    """Invalidate every key of the connector now, unregister it, delete its stored state (whoever
    held its key may have written it), and refuse its registrations."""
    credentials.revoke(uuid)
    registry.unregister(uuid)
    delete_state(get_redis(), uuid)
    return IdentityChanged(message=f"connector {uuid} revoked", id=uuid)


@operator.post("/connectors/{uuid}/reinstate", responses={404: {"description": "not revoked"}})
def reinstate_connector(uuid: Uuid, credentials: ConnectorKeysDep) -> IdentityChanged:
    """Let a revoked connector register again (it receives a new pair)."""
    if not credentials.reinstate(uuid):
        raise HTTPException(404, f"connector {uuid} is not revoked")
    return IdentityChanged(message=f"connector {uuid} may register again", id=uuid)


@operator.post("/connectors/{uuid}/reset")
def reset_connector(uuid: Uuid, credentials: ConnectorKeysDep, registry: RegistryDep) -> IdentityChanged:
    """Forget the connector's identity: its keys stop working at once and it is unregistered; the
    next registration with an enrollment token creates the identity anew (a lost or stolen pair).
    Its stored state (cursors) is deleted too: the new identity starts from none."""
    existed = credentials.reset(uuid)
    registry.unregister(uuid)
    delete_state(get_redis(), uuid)
    message = f"identity of connector {uuid} reset" if existed else f"connector {uuid} had no identity"
    return IdentityChanged(message=message, id=uuid)


def _tokens(settings: SettingsDep) -> EnrollmentTokens:
    return EnrollmentTokens(get_redis(), settings.auth)


@operator.post("/enrollment-tokens", status_code=201)
def mint_enrollment_token(body: MintToken, response: Response, settings: SettingsDep) -> MintedToken:
    """A new enrollment token scoped to one connector (name or uuid); shown in this answer only."""
    token, record = _tokens(settings).mint(
        connector_name=body.connector_name,
        connector_uuid=body.connector_uuid,
        expires_in_s=body.expires_in_s,
        label=body.label,
    )
    response.headers["Cache-Control"] = "no-store"
    return MintedToken.model_validate(
        {"message": "enrollment token minted (shown once)", "token": token} | record
    )


@operator.get("/enrollment-tokens")
def list_enrollment_tokens(settings: SettingsDep) -> list[EnrollmentTokenInfo]:
    """Scoped enrollment tokens still valid: id, binding, label, dates (never the token)."""
    return [EnrollmentTokenInfo.model_validate(token) for token in _tokens(settings).list()]


@operator.delete("/enrollment-tokens/{token_id}", responses={404: {"description": "no such token"}})
def revoke_enrollment_token(token_id: TokenId, settings: SettingsDep) -> IdentityChanged:
    """Revoke a scoped enrollment token at once (identities it created keep their keys)."""
    if not _tokens(settings).revoke(token_id):
        raise HTTPException(404, f"no enrollment token {token_id}")
    return IdentityChanged(message=f"enrollment token {token_id} revoked", id=token_id)


router.include_router(operator)
