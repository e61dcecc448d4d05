"""Operator login for the dashboard, and the connector credential controls (SPEC §8).

- ``POST /auth/login`` (``{"api_key"}`` or the key in ``X-API-Key``): sets the ``dsx_session`` cookie
  (HttpOnly, SameSite=Strict, Secure over HTTPS); ``POST /auth/logout`` ends it;
  ``GET /auth/session`` says whether auth is on and whether this browser is logged in.
- ``GET /auth/connectors[/{uuid}]``: key ids and dates of each connector's pair (never a secret).
- ``POST /auth/connectors/{uuid}/rotate``: a new pair; the connector receives it with its next
  registration, the previous one stays valid for ``DSXCONNECT_AUTH__KEY_ROTATION_GRACE_S``.
- ``POST /auth/connectors/{uuid}/revoke``: every key of the connector stops working at once, it is
  unregistered and its registrations are refused until ``POST .../reinstate``.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Body, Header, HTTPException, Path, Request, Response
from pydantic import BaseModel, Field

from dsx_connect.api.deps import RegistryDep, SettingsDep
from dsx_connect.auth.deps import ConnectorKeysDep
from dsx_connect.auth.operators import SESSION_COOKIE, OperatorAuth
from dsx_connect.redis_client import get_redis

router = APIRouter(prefix="/auth", tags=["auth"])

Uuid = Annotated[str, Path(min_length=1, max_length=64)]


class Login(BaseModel):
    api_key: str = Field(min_length=1, max_length=512)


def _operators(settings: SettingsDep) -> OperatorAuth:
    return OperatorAuth(get_redis(), settings.auth)


@router.post("/login", responses={401: {"description": "the API key is not valid"}})
def login(
    request: Request,
    response: Response,
    settings: SettingsDep,
    body: Annotated[Login | None, Body()] = None,
    x_api_key: Annotated[str | None, Header(max_length=512)] = None,
) -> dict[str, Any]:
    """Open a dashboard session with an operator API key (sets an HttpOnly cookie)."""
    if not settings.auth.enabled:
        return {"status": "success", "message": "authentication is disabled", "auth_enabled": False}
    key = (body.api_key if body else None) or x_api_key or ""
    operators = _operators(settings)
    if not operators.api_key_ok(key):
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
    return {"status": "success", "message": "logged in", "auth_enabled": True}


@router.post("/logout")
def logout(request: Request, response: Response, settings: SettingsDep) -> dict[str, str]:
    """End this browser's session."""
    _operators(settings).close_session(request.cookies.get(SESSION_COOKIE, ""))
    response.delete_cookie(SESSION_COOKIE, path="/", httponly=True, samesite="strict")
    return {"status": "success", "message": "logged out"}


@router.get("/session")
def read_session(request: Request, settings: SettingsDep) -> dict[str, bool]:
    """Whether auth is on and whether this browser holds a valid session."""
    if not settings.auth.enabled:
        return {"auth_enabled": False, "authenticated": True}
    return {
        "auth_enabled": True,
        "authenticated": _operators(settings).session_ok(request.cookies.get(SESSION_COOKIE, "")),
    }


@router.get("/connectors")
def list_connector_keys(registry: RegistryDep, credentials: ConnectorKeysDep) -> list[dict[str, Any]]:
    """Each registered connector's key id, its dates, and whether it is revoked (never a secret)."""
    return [credentials.describe(c.uuid) | {"name": c.name} for c in registry.list()]


@router.get("/connectors/{uuid}")
def read_connector_keys(uuid: Uuid, credentials: ConnectorKeysDep) -> dict[str, Any]:
    """One connector's key id, its dates, and whether it is revoked."""
    return credentials.describe(uuid)


@router.post("/connectors/{uuid}/rotate", responses={404: {"description": "no key for this connector"}})
def rotate_connector_key(uuid: Uuid, credentials: ConnectorKeysDep, settings: SettingsDep) -> dict[str, Any]:
    """Issue a new pair; the connector picks it up from its next registration answer."""
    if credentials.describe(uuid)["key_id"] is None:
        raise HTTPException(404, f"connector {uuid} has no key (it never enrolled, or it is revoked)")
    key_id = credentials.rotate(uuid)
    grace = settings.auth.key_rotation_grace_s
    return {
        "status": "success",
        "message": f"new key issued; the connector receives it at its next registration, the previous key stays valid for {grace} s",
        "key_id": key_id,
    }


@router.post("/connectors/{uuid}/revoke")
def revoke_connector(uuid: Uuid, credentials: ConnectorKeysDep, registry: RegistryDep) -> dict[str, Any]:
    """Invalidate every key of the connector now, unregister it, and refuse its registrations."""
    credentials.revoke(uuid)
    registry.unregister(uuid)
    return {"status": "success", "message": f"connector {uuid} revoked", "id": uuid}


@router.post("/connectors/{uuid}/reinstate", responses={404: {"description": "not revoked"}})
def reinstate_connector(uuid: Uuid, credentials: ConnectorKeysDep) -> dict[str, Any]:
    """Let a revoked connector register again (it receives a new pair)."""
    if not credentials.reinstate(uuid):
        raise HTTPException(404, f"connector {uuid} is not revoked")
    return {"status": "success", "message": f"connector {uuid} may register again", "id": uuid}
