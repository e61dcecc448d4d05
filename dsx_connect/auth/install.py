"""Wire security into the core app: the gate, the body limit, the login and key routes."""

from __future__ import annotations

import logging

from fastapi import FastAPI

from dsx_connect.auth import api
from dsx_connect.auth.middleware import AuthMiddleware
from dsx_connect.redis_client import get_redis
from dsx_connect.settings import Settings
from shared.body_limit import BodyLimitMiddleware
from shared.settings import SettingsError

log = logging.getLogger(__name__)


def install_security(app: FastAPI, settings: Settings, api_prefix: str) -> None:
    """Add the auth gate (unless ``DSXCONNECT_AUTH__ENABLED=false``) and the body limit around the
    routes; a core with auth on but no enrollment token or API key stops here, naming them."""
    auth = settings.auth
    if auth.enabled:
        if missing := auth.missing():
            raise SettingsError(
                "invalid configuration:\n"
                + "\n".join(f"  {name}: required while DSXCONNECT_AUTH__ENABLED is true" for name in missing)
                + "\n  (or set DSXCONNECT_AUTH__ENABLED=false to run without authentication)"
            )
        app.add_middleware(
            AuthMiddleware, settings=auth, client=get_redis(), max_body_bytes=settings.max_request_bytes
        )
        if auth.server_key is None:
            log.warning(
                "DSXCONNECT_AUTH__SERVER_KEY is unset: connector secrets derive from a key generated "
                "and kept in Redis; set it so that a copy of Redis holds no usable secret"
            )
    else:
        log.warning(
            "DSXCONNECT_AUTH__ENABLED=false: no enrollment, no DSX-HMAC, no operator keys; "
            "anyone who reaches this API controls it and the connectors"
        )
    app.add_middleware(BodyLimitMiddleware, max_bytes=settings.max_request_bytes)
    app.include_router(api.router, prefix=api_prefix)
