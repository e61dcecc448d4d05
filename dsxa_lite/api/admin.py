"""Operator routes: ``POST /admin/reload`` rebuilds the rules without a restart (as SIGHUP does).

Protected by the scanner token (``AUTH_TOKEN``/``AUTH`` header) when one is set; without a token
only loopback clients may call it, and only directly: a request carrying a proxy's forwarding
headers (``X-Forwarded-*``, ``Forwarded``, ``X-Real-IP``, ``Via``, ``X-Envoy-*``) is refused, since
behind a proxy on the same host (a service-mesh sidecar forwards from 127.0.0.6) every remote
caller arrives from loopback. A proxy that adds none of them (a plain TCP one) cannot be told
apart: set ``DSXA_LITE_AUTH_TOKEN`` wherever one is in front.
"""

from __future__ import annotations

import dataclasses
import hmac
import ipaddress

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse

from dsxa_lite.api.scan import error_response
from dsxa_lite.service import ScanService

router = APIRouter(tags=["admin"])

# headers a proxy adds to what it forwards (lower case, as ASGI gives them); names ending in "-"
# are prefixes
_PROXY_HEADERS = ("x-forwarded-", "forwarded", "x-real-ip", "via", "x-envoy-", "x-original-forwarded-for")


def _forwarded(request: Request) -> str | None:
    """The first proxy forwarding header of ``request``, or None."""
    for raw, _ in request.scope["headers"]:
        name = raw.decode("latin-1").lower()
        for proxy in _PROXY_HEADERS:
            if name.startswith(proxy) if proxy.endswith("-") else name == proxy:
                return name
    return None


def _allowed(request: Request, service: ScanService) -> JSONResponse | None:
    token = service.auth_token
    if token is not None:
        sent = request.headers.get("auth_token") or request.headers.get("auth")
        if sent is None or not hmac.compare_digest(sent.encode("latin-1"), token):
            return error_response(401, "missing or invalid AUTH_TOKEN")  # type: ignore[return-value]
        return None
    host = request.client.host if request.client else ""
    try:
        loopback = ipaddress.ip_address(host).is_loopback
    except ValueError:
        loopback = False
    if not loopback:
        return error_response(403, "set DSXA_LITE_AUTH_TOKEN to reload from another host")  # type: ignore[return-value]
    forwarded = _forwarded(request)
    if forwarded is not None:
        return error_response(  # type: ignore[return-value]
            403,
            f"request came through a proxy ({forwarded} header): set DSXA_LITE_AUTH_TOKEN to reload through one",
        )
    return None


@router.post(
    "/admin/reload",
    responses={
        401: {"description": "Missing or wrong token"},
        403: {
            "description": "No token configured and the caller is not on loopback, or came through a proxy"
        },
        422: {"description": "The new rules failed to build; the current ones stay (`error` says why)"},
    },
)
async def reload_rules(request: Request) -> JSONResponse:
    """Rebuild rules, block list and clamd identity off the request path and swap them in."""
    service: ScanService = request.app.state.scan_service
    refused = _allowed(request, service)
    if refused is not None:
        return refused
    result = await service.reload("api")
    return JSONResponse(dataclasses.asdict(result), status_code=200 if result.ok else 422)
