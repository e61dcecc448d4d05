"""A scanner that answers every scan with one scripted verdict, for tests of answers dsxa_lite never
gives (a real DSXA's, or a misbehaving one's).

    SCRIPTED_VERDICT='{"verdict": "Suspicious"}' uvicorn tests.support.scripted_scanner:app --port P

The JSON in ``SCRIPTED_VERDICT`` is merged over a well-formed Benign answer; ``GET /healthz`` is ok;
``GET /__scans`` counts the scans per ``file-loc`` of their ``X-Custom-Metadata``.
"""

from __future__ import annotations

import json
import os
import uuid
from collections import Counter

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

_SCRIPT = json.loads(os.environ.get("SCRIPTED_VERDICT", "{}"))
_SCANS: Counter[str] = Counter()


async def scan(request: Request) -> Response:
    body = await request.body()
    metadata = request.headers.get("X-Custom-Metadata") or ""
    _SCANS[metadata.split(",", 1)[0].removeprefix("file-loc:")] += 1
    answer = {
        "scan_guid": uuid.uuid4().hex,
        "verdict": "Benign",
        "verdict_details": {"event_description": "scripted", "reason": "", "threat_type": None},
        "file_info": {"file_type": "Text", "file_size_in_bytes": len(body), "file_hash": ""},
        "scan_duration_in_microseconds": 1,
        "protected_entity": 1,
        "X-Custom-Metadata": metadata or None,
    }
    return JSONResponse(answer | _SCRIPT)


async def healthz(request: Request) -> Response:
    return JSONResponse({"status": "ok"})


async def scans(request: Request) -> Response:
    return JSONResponse(dict(_SCANS))


app = Starlette(
    routes=[
        Route("/healthz", healthz, methods=["GET"]),
        Route("/__scans", scans, methods=["GET"]),
        Route("/scan/binary/v2", scan, methods=["POST"]),
    ]
)
