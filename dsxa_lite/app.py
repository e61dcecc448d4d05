"""dsxa_lite: the project's own scanner, speaking the DSXA protocol (SPEC §3).

Run: ``uvicorn dsxa_lite.app:app --port 5000`` (httptools + uvloop are picked up when installed),
or ``python -m dsxa_lite``. Settings: ``dsxa_lite.settings`` (prefix ``DSXA_LITE_``).
Rules and block list are loaded at import, so a bad configuration stops the process before it
listens, with the variable named. ``SIGHUP`` (or ``POST /admin/reload``) reloads them.
"""

from __future__ import annotations

import asyncio
import logging
import signal
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager, suppress
from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi

from dsxa_lite.api import admin, by_path, health, scan
from dsxa_lite.by_path import PathScans
from dsxa_lite.service import ScanService
from dsxa_lite.settings import DsxaLiteSettings, get_settings
from dsxa_lite.version import __version__
from shared.api_docs import install_api_docs
from shared.logging import configure_logging
from shared.malloc_tuning import keep_freed_heap, limit_malloc_arenas

log = logging.getLogger("dsxa_lite")


def _on_sighup(service: ScanService, tasks: set[asyncio.Task[Any]]) -> None:
    task = asyncio.get_running_loop().create_task(service.reload("SIGHUP"))
    tasks.add(task)
    task.add_done_callback(tasks.discard)


def create_app(settings: DsxaLiteSettings | None = None) -> FastAPI:
    """Build the app with its engines compiled from ``settings`` (the environment by default)."""
    configure_logging("dsxa_lite")
    limit_malloc_arenas()  # before the service's threads start (shared/malloc_tuning.py)
    keep_freed_heap()  # streamed bodies' pieces: no page faults for each (shared/malloc_tuning.py)
    settings = settings or get_settings()
    service = ScanService(settings)

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        loop = asyncio.get_running_loop()
        tasks: set[asyncio.Task[Any]] = set()
        handled = False
        with suppress(NotImplementedError, RuntimeError, ValueError):  # not the main thread / OS
            loop.add_signal_handler(signal.SIGHUP, _on_sighup, service, tasks)
            handled = True
        try:
            yield
        finally:
            if handled:
                loop.remove_signal_handler(signal.SIGHUP)

    application = FastAPI(
        title="dsxa_lite",
        version=__version__,
        summary="DSXA-protocol scanner: EICAR, SHA-256 block list, YARA (yara-x), archives, optional ClamAV.",
        lifespan=lifespan,
        docs_url=None,  # served from this package, not a CDN (shared/api_docs.py)
        redoc_url=None,
        # no OpenTelemetry here: skip FastAPI's per-request check for configured providers
        telemetry={"tracing": False, "metrics": False, "logs": False},
    )
    application.state.scan_service = service
    application.state.path_scans = PathScans(settings.by_path_results)
    application.router.routes[:0] = scan.serving_routes()  # hot path: plain routes, matched first
    application.include_router(by_path.router)
    application.include_router(admin.router)
    application.include_router(health.router)
    install_api_docs(application, "/docs")

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
    ruleset = service.ruleset
    log.info(
        "engines loaded",
        extra={
            "rules_version": ruleset.rules_version,
            "identity": ruleset.identity,
            "rule_files": ruleset.yara.files,
            "blocklist_size": len(ruleset.blocklist),
            "clamd": settings.clamd,
            "auth": service.auth_token is not None,
        },
    )
    return application


app = create_app()
