"""A local stand-in for Splunk HEC and for the Azure Monitor Logs Ingestion API plus its token endpoint.

Run under uvicorn (HTTPS) by the tests' fixture. It checks what the real services check (token,
headers, api-version, body shape) and records every call; ``/_received`` returns the records and
``/_control`` makes it fail on purpose (a status for the next calls, or refuse bodies holding a marker).

Environment: ``RECEIVER_HEC_TOKEN``, ``RECEIVER_CLIENT_ID``, ``RECEIVER_CLIENT_SECRET``.
"""

from __future__ import annotations

import json
import os
import secrets
from typing import Any
from urllib.parse import parse_qs

from fastapi import FastAPI, Request, Response
from fastapi.responses import JSONResponse

app = FastAPI()

HEC_TOKEN = os.environ.get("RECEIVER_HEC_TOKEN", "hec-token")
CLIENT_ID = os.environ.get("RECEIVER_CLIENT_ID", "client-id")
CLIENT_SECRET = os.environ.get("RECEIVER_CLIENT_SECRET", "client-secret")
SENTINEL_LIMIT = 1_048_576

received: dict[str, list[dict[str, Any]]] = {"splunk": [], "sentinel": [], "token": []}
issued: set[str] = set()
control: dict[str, Any] = {
    "fail_next": 0,
    "status": 503,
    "retry_after": None,
    "refuse_marker": None,
    "fail_body": None,  # the JSON answer of a failing call (default: {"text": "failing on purpose"})
}


def _failure() -> Response | None:
    if control["fail_next"] > 0:
        control["fail_next"] -= 1
        headers = {"Retry-After": str(control["retry_after"])} if control["retry_after"] is not None else {}
        body = control["fail_body"] if control["fail_body"] is not None else {"text": "failing on purpose"}
        return JSONResponse(body, status_code=control["status"], headers=headers)
    return None


@app.get("/_alive")
def alive() -> dict[str, str]:
    return {"status": "ok"}


@app.get("/_received")
def read_received() -> dict[str, Any]:
    return received


@app.delete("/_received")
def clear_received() -> dict[str, str]:
    for calls in received.values():
        calls.clear()
    issued.clear()
    return {"status": "ok"}


@app.post("/_control")
async def set_control(request: Request) -> dict[str, Any]:
    control.update(await request.json())
    return control


# ---- Splunk HTTP Event Collector ------------------------------------------------------------


@app.post("/services/collector/event")
async def hec_event(request: Request) -> Response:
    body = (await request.body()).decode()
    if request.headers.get("authorization") != f"Splunk {HEC_TOKEN}":
        return JSONResponse({"text": "Invalid token", "code": 4}, status_code=403)
    if (failure := _failure()) is not None:
        return failure
    marker = control["refuse_marker"]
    if marker and marker in body:
        return JSONResponse({"text": "Invalid data format", "code": 6}, status_code=400)
    try:
        events = [json.loads(line) for line in body.splitlines() if line.strip()]
    except ValueError:
        return JSONResponse({"text": "Invalid data format", "code": 6}, status_code=400)
    received["splunk"].append({"headers": dict(request.headers), "events": events})
    return JSONResponse({"text": "Success", "code": 0})


# ---- Microsoft Entra token endpoint (what msal asks for) -------------------------------------


@app.get("/{tenant}/v2.0/.well-known/openid-configuration")
def openid_configuration(tenant: str, request: Request) -> dict[str, str]:
    base = str(request.base_url).rstrip("/")
    return {
        "issuer": f"{base}/{tenant}/v2.0",
        "authorization_endpoint": f"{base}/{tenant}/oauth2/v2.0/authorize",
        "token_endpoint": f"{base}/{tenant}/oauth2/v2.0/token",
    }


@app.post("/{tenant}/oauth2/v2.0/token")
async def token(tenant: str, request: Request) -> Response:
    form = {k: v[0] for k, v in parse_qs((await request.body()).decode()).items()}  # x-www-form-urlencoded
    received["token"].append(
        {"tenant": tenant, "form": {k: v for k, v in form.items() if k != "client_secret"}}
    )
    if (
        form.get("grant_type") != "client_credentials"
        or form.get("client_id") != CLIENT_ID
        or form.get("client_secret") != CLIENT_SECRET
    ):
        return JSONResponse(
            {"error": "invalid_client", "error_description": "bad credentials"}, status_code=401
        )
    access = "tok-" + secrets.token_hex(8)
    issued.add(access)
    return JSONResponse({"token_type": "Bearer", "expires_in": 3599, "access_token": access})


# ---- Azure Monitor Logs Ingestion API --------------------------------------------------------


@app.post("/dataCollectionRules/{dcr}/streams/{stream}")
async def ingest(dcr: str, stream: str, request: Request) -> Response:
    auth = request.headers.get("authorization", "")
    if not auth.startswith("Bearer ") or auth[7:] not in issued:
        return JSONResponse({"error": {"code": "InvalidToken"}}, status_code=401)
    if request.query_params.get("api-version") != "2023-01-01":
        return JSONResponse({"error": {"code": "InvalidApiVersion"}}, status_code=400)
    if (failure := _failure()) is not None:
        return failure
    body = await request.body()
    if len(body) > SENTINEL_LIMIT:
        return JSONResponse({"error": {"code": "ContentLengthLimitExceeded"}}, status_code=413)
    rows = json.loads(body)
    if not isinstance(rows, list):
        return JSONResponse({"error": {"code": "InvalidPayload"}}, status_code=400)
    received["sentinel"].append(
        {"dcr": dcr, "stream": stream, "headers": dict(request.headers), "rows": rows, "bytes": len(body)}
    )
    return Response(status_code=204)
