"""The core API: ``uvicorn dsx_connect.app:app`` (port 8586)."""

from __future__ import annotations

import logging
from pathlib import Path

from fastapi import FastAPI
from fastapi.staticfiles import StaticFiles

from dsx_connect.api import connectors, health, jobs, metrics, results, scan_requests
from dsx_connect.api.errors import install_error_handlers
from dsx_connect.api.middleware import RequestContextMiddleware
from dsx_connect.settings import get_settings
from dsx_connect.version import __version__
from shared.logging import configure_logging

API_PREFIX = "/dsx-connect/api/v1"
DASHBOARD_DIR = Path(__file__).parent / "dashboard" / "static"

log = logging.getLogger(__name__)


def create_app() -> FastAPI:
    settings = get_settings()  # a bad value stops the service here, naming the variable
    configure_logging("dsx_connect.api", settings.log_level)
    app = FastAPI(
        title="dsx-connect",
        version=__version__,
        description="Scan the files in your storage for malware and act on the verdicts.",
        docs_url="/docs",
        openapi_url=f"{API_PREFIX}/openapi.json",
        # no OpenTelemetry configured: skip FastAPI's per-request check for providers
        telemetry={"tracing": False, "metrics": False, "logs": False},
    )
    app.add_middleware(RequestContextMiddleware)
    install_error_handlers(app)
    app.include_router(health.probe_router)
    app.include_router(health.probe_router, prefix=API_PREFIX)
    for router in (health.router, scan_requests.router, results.router, jobs.router, connectors.router):
        app.include_router(router, prefix=API_PREFIX)
    app.include_router(metrics.router)
    app.mount("/", StaticFiles(directory=DASHBOARD_DIR, html=True), name="dashboard")
    log.info(
        "dsx-connect %s starting (redis %s, scanner %s)",
        __version__,
        settings.redacted()["redis_url"],
        settings.scanner.scan_binary_url,
    )
    return app


app = create_app()
