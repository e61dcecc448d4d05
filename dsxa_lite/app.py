"""dsxa_lite: the project's own scanner, speaking the DSXA protocol (SPEC §3).

Run: ``uvicorn dsxa_lite.app:app --port 5000`` (httptools + uvloop are picked up when installed),
or ``python -m dsxa_lite``. Settings: ``dsxa_lite.settings`` (prefix ``DSXA_LITE_``).
Rules and block list are loaded at import, so a bad configuration stops the process before it
listens, with the variable named.
"""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi

from dsxa_lite.api import health, scan
from dsxa_lite.service import ScanService
from dsxa_lite.settings import DsxaLiteSettings, get_settings
from dsxa_lite.version import __version__
from shared.logging import configure_logging

log = logging.getLogger("dsxa_lite")


def create_app(settings: DsxaLiteSettings | None = None) -> FastAPI:
    """Build the app with its engines compiled from ``settings`` (the environment by default)."""
    configure_logging("dsxa_lite")
    settings = settings or get_settings()
    service = ScanService(settings)
    application = FastAPI(
        title="dsxa_lite",
        version=__version__,
        summary="DSXA-protocol scanner: EICAR, SHA-256 block list and YARA (yara-x).",
        # no OpenTelemetry here: skip FastAPI's per-request check for configured providers
        telemetry={"tracing": False, "metrics": False, "logs": False},
    )
    application.state.scan_service = service
    application.router.routes[:0] = scan.serving_routes()  # hot path: plain routes, matched first
    application.include_router(health.router)

    def openapi() -> dict[str, Any]:
        if application.openapi_schema is None:
            application.openapi_schema = get_openapi(
                title=application.title,
                version=application.version,
                summary=application.summary,
                routes=[*scan.router.routes, *application.routes],
            )
        return application.openapi_schema

    application.openapi = openapi  # type: ignore[method-assign]
    log.info(
        "engines loaded",
        extra={
            "rules_version": service.rules_version,
            "rule_files": service.yara.files,
            "blocklist_size": len(service.blocklist),
            "auth": service.auth_token is not None,
        },
    )
    return application


app = create_app()
