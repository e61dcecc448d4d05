"""Identity and health routes: ``/alive``, ``/ping``, ``/healthz``, ``/readyz``, ``/version``.

None of them needs the scanner token: they expose no file and no secret, and no rule content
(``/version``'s ``last_reload`` says whether the last reload failed, not why: the reason quotes
rule and block-list lines; it goes to the log and to ``POST /admin/reload``'s answer).
"""

from __future__ import annotations

import dataclasses
import os
import tempfile
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse

from dsxa_lite.api.clamd_version import current_ruleset
from dsxa_lite.service import ReloadResult, ScanService
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


#: ``last_reload.error`` on ``/version`` when the last reload failed (the reason is not shown there)
RELOAD_FAILED = "reload failed; the reason is in the scanner's log and in the POST /admin/reload answer"


def _public_reload(reload: ReloadResult) -> dict[str, Any]:
    """``reload`` for anyone: whether it failed and when, not why (the reason quotes rules)."""
    public = dataclasses.asdict(reload)
    if public["error"] is not None:
        public["error"] = RELOAD_FAILED
    return public


@router.get("/version")
async def version(request: Request) -> dict[str, Any]:
    """Service, engine and rule-set versions; ``identity`` (also ``engine_version`` of every
    answer) changes whenever the rules, block list or engines do (clamd's signatures included),
    so verdict caches key on it."""
    service: ScanService = request.app.state.scan_service
    ruleset = await current_ruleset(service)
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
        "last_reload": _public_reload(reload) if reload is not None else None,
    }
