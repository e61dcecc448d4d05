"""Identity and health routes: ``/alive``, ``/ping``, ``/healthz``, ``/readyz``, ``/version``.

None of them needs the scanner token: they expose no file and no secret.
"""

from __future__ import annotations

import dataclasses
import os
import tempfile
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse

from dsxa_lite.service import ScanService
from dsxa_lite.version import __version__
from shared.health import liveness_router
from shared.models import utcnow_iso

router = APIRouter(tags=["service"])


router.include_router(liveness_router())


@router.get("/healthz")
async def healthz() -> dict[str, str]:
    """The process is up and its engines are loaded (they load before it listens)."""
    return {"status": "ok", "ts": utcnow_iso()}


@router.get("/readyz", responses={503: {"description": "A dependency is not usable; `failing` names it"}})
async def readyz(request: Request) -> JSONResponse:
    """Ready to scan: rules compiled and the spool folder writable (503 naming what fails)."""
    service: ScanService = request.app.state.scan_service
    spool_dir = service.settings.spool_dir or tempfile.gettempdir()
    if not os.access(spool_dir, os.W_OK | os.X_OK):
        return JSONResponse(
            {
                "status": "unavailable",
                "failing": "spool_dir",
                "detail": f"spool folder {spool_dir} is not writable",
                "ts": utcnow_iso(),
            },
            status_code=503,
        )
    return JSONResponse({"status": "ok", "ts": utcnow_iso()})


@router.get("/version")
async def version(request: Request) -> dict[str, Any]:
    """Service, engine and rule-set versions; ``identity`` (also ``engine_version`` of every
    answer) changes whenever the rules, block list or engines do, so verdict caches key on it."""
    service: ScanService = request.app.state.scan_service
    ruleset = service.ruleset
    reload = service.last_reload
    return {
        "version": __version__,
        "engine_version": ruleset.engine_version,
        "rules_version": ruleset.rules_version,
        "identity": ruleset.identity,
        "rules_loaded_at": ruleset.loaded_at,
        "engines": [engine.name for engine in ruleset.engines],
        "rule_files": ruleset.yara.files,
        "blocklist_size": len(ruleset.blocklist),
        "max_file_size_bytes": service.settings.max_file_size_bytes,
        "archives": service.settings.archives,
        "archive_limits": dataclasses.asdict(service.limits),
        "last_reload": dataclasses.asdict(reload) if reload is not None else None,
    }
