"""The core API: ``uvicorn dsx_connect.app:app`` (port 8586)."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

from fastapi import FastAPI
from fastapi.staticfiles import StaticFiles

from dsx_connect.api import (
    connectors,
    dead_letter_1x,
    dlq,
    health,
    jobs,
    metrics,
    notifications,
    reports,
    results,
    scan_requests,
    schedules,
    stats_history,
    subscribe,
    superlog,
)
from dsx_connect.api.deps import publish_scan_tasks, send_to_stage
from dsx_connect.api.errors import install_error_handlers
from dsx_connect.api.middleware import RequestContextMiddleware
from dsx_connect.auth.access import OPERATOR_ONLY
from dsx_connect.auth.install import install_security
from dsx_connect.jobs.stall import watch_stalled_jobs
from dsx_connect.redis_client import get_redis
from dsx_connect.results.maintenance import results_maintenance
from dsx_connect.schedules.runner import scheduled_scans
from dsx_connect.settings import get_settings, warn_about_split_broker, warn_about_unknown_variables
from dsx_connect.version import __version__
from shared.api_docs import install_api_docs
from shared.gc_tuning import tune_gc
from shared.logging import configure_logging

API_PREFIX = "/dsx-connect/api/v1"
DASHBOARD_DIR = Path(__file__).parent / "dashboard" / "static"

log = logging.getLogger(__name__)


@asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    """The SSE event hub, the stalled-job sweep, the results history's upkeep and the scan scheduler
    live as long as the app."""
    settings = get_settings()
    async with (
        results_maintenance(settings.results_db, get_redis()),
        subscribe.event_hub(settings.redis_url) as hub,
        watch_stalled_jobs(settings, get_redis(), publish_scan_tasks, send_to_stage),
        scheduled_scans(settings, get_redis()),
    ):
        app.state.event_hub = hub
        tune_gc()
        yield


def create_app() -> FastAPI:
    settings = get_settings()  # a bad value stops the service here, naming the variable
    configure_logging("dsx_connect.api", settings.log_level)
    warn_about_unknown_variables(log)  # typos and 1.x names without meaning here are never dropped silently
    warn_about_split_broker(settings, log)
    app = FastAPI(
        title="dsx-connect",
        version=__version__,
        description="Scan the files in your storage for malware and act on the verdicts.",
        docs_url=None,  # served from this package, not a CDN (shared/api_docs.py)
        redoc_url=None,
        openapi_url=f"{API_PREFIX}/openapi.json",
        # no OpenTelemetry configured: skip FastAPI's per-request check for providers
        telemetry={"tracing": False, "metrics": False, "logs": False},
        lifespan=lifespan,
    )
    install_api_docs(app, "/docs")
    install_security(app, settings, API_PREFIX)  # auth gate + body limit (SPEC §8), inside the request id
    app.add_middleware(RequestContextMiddleware)
    install_error_handlers(app)
    app.include_router(health.probe_router)
    app.include_router(health.probe_router, prefix=API_PREFIX)
    # each route declares its access (dsx_connect.auth.access); these routers are for operators only
    for router in (health.router, scan_requests.router, jobs.router, connectors.router, schedules.router):
        app.include_router(router, prefix=API_PREFIX)
    for router in (results.router, reports.router, subscribe.router, superlog.router, notifications.router):
        app.include_router(router, prefix=API_PREFIX, dependencies=[OPERATOR_ONLY])
    app.include_router(stats_history.router, prefix=API_PREFIX, dependencies=[OPERATOR_ONLY])
    app.include_router(dlq.dlq_router(), prefix=f"{API_PREFIX}/dlq", dependencies=[OPERATOR_ONLY])
    app.include_router(
        dlq.dlq_router(),
        prefix=f"{API_PREFIX}/admin/dead-letter",
        include_in_schema=False,
        dependencies=[OPERATOR_ONLY],
    )
    app.include_router(  # the 1.x paths and answer shapes
        dead_letter_1x.router, prefix=f"{API_PREFIX}/admin/dead-letter", dependencies=[OPERATOR_ONLY]
    )
    app.include_router(metrics.router, dependencies=[OPERATOR_ONLY])
    app.mount("/", StaticFiles(directory=DASHBOARD_DIR, html=True), name="dashboard")
    log.info(
        "dsx-connect %s starting (redis %s, scanner %s)",
        __version__,
        settings.redacted()["redis_url"],
        settings.scanner.scan_binary_url,
    )
    return app


app = create_app()
