"""Wire security into the core app: the auth layer, the default-deny gate, the body limit, the routes."""

from __future__ import annotations

import logging

from fastapi import FastAPI

from dsx_connect.auth import api
from dsx_connect.auth.access import ACCESS_GATE
from dsx_connect.auth.middleware import REGISTER_PATH, AuthMiddleware, CrossSiteGuard
from dsx_connect.redis_client import get_redis
from dsx_connect.settings import Settings
from shared.body_limit import BodyLimitMiddleware
from shared.settings import SettingsError

log = logging.getLogger(__name__)


def install_security(app: FastAPI, settings: Settings, api_prefix: str) -> None:
    """Add the auth layer (unless ``DSXCONNECT_AUTH__ENABLED=false``) and the body limit around the
    routes, and the access gate to every route included after this call; a core with auth on but no
    enrollment token or API key stops here, naming them."""
    auth = settings.auth
    app.state.auth_enabled = auth.enabled
    app.router.dependencies.append(ACCESS_GATE)  # deny by default: routes without a rule are operator-only
    if auth.enabled:
        if missing := auth.missing():
            raise SettingsError(
                "invalid configuration:\n"
                + "\n".join(f"  {name}: required while DSXCONNECT_AUTH__ENABLED is true" for name in missing)
                + "\n  (or set DSXCONNECT_AUTH__ENABLED=false to run without authentication)"
            )
        app.add_middleware(
            AuthMiddleware,
            settings=auth,
            client=get_redis(),
            max_body_bytes=settings.max_request_bytes,
            register_path=api_prefix + REGISTER_PATH,
        )
        if auth.server_key is None:
            log.warning(
                "DSXCONNECT_AUTH__SERVER_KEY is unset: connector secrets derive from a key generated "
                "and kept in Redis; set it so that a copy of Redis holds no usable secret"
            )
        if auth.allow_fleet_reenroll:
            log.warning(
                "DSXCONNECT_AUTH__ALLOW_FLEET_REENROLL=true: anyone holding a fleet-wide enrollment token can "
                "re-register any existing connector uuid and receive its key pair (1.x behaviour); mint scoped "
                "tokens (inv enrollment-token) and turn this off once every connector has one"
            )
    else:
        log.warning(
            "DSXCONNECT_AUTH__ENABLED=false: no enrollment, no DSX-HMAC, no operator keys; "
            "anyone who reaches this API controls it and the connectors"
        )
        app.add_middleware(CrossSiteGuard)  # nor may every web page an operator's browser opens
    app.add_middleware(BodyLimitMiddleware, max_bytes=settings.max_request_bytes)
    app.include_router(api.router, prefix=api_prefix)
