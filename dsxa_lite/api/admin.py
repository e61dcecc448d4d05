"""Operator routes: ``POST /admin/reload`` rebuilds the rules without a restart (as SIGHUP does).

Protected by the scanner token (``AUTH_TOKEN``/``AUTH`` header) when one is set; without a token
only loopback clients may call it.
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
    return None


@router.post(
    "/admin/reload",
    responses={
        401: {"description": "Missing or wrong token"},
        403: {"description": "No token configured and the caller is not on loopback"},
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
