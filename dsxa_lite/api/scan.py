"""DSXA scan routes (SPEC §3): binary, base64 and by-hash.

This is the hot path. Handlers read the raw request stream and answer with ``json.dumps`` into a
``Response``, without FastAPI body parsing or pydantic validation. The app serves them as plain
Starlette routes (:func:`serving_routes`): measured in-process with a 4 KiB body, a FastAPI
``APIRoute`` inside an included router cost ~210 µs a request against ~110 µs for the same
handler on a Starlette ``Route``. ``router`` keeps the FastAPI declarations for the OpenAPI schema.

Errors answer a verdict-shaped body (``verdict: "Not Scanned"``, ``verdict_details.reason``) that
the core reads like DSXA's.
"""

from __future__ import annotations

import hmac
import json
import logging
import time
from collections.abc import AsyncIterable
from typing import Any

from fastapi import APIRouter, Request, Response
from fastapi.routing import APIRoute
from starlette.datastructures import Headers
from starlette.requests import ClientDisconnect
from starlette.routing import Route

from dsxa_lite.api.clamd_version import follow_clamd
from dsxa_lite.body import BadBody, decode_base64, receive_body
from dsxa_lite.service import Outcome, ScanFailed, ScanService, verdict_document
from shared.models import DsxaVerdict, Verdict

log = logging.getLogger("dsxa_lite.scan")

JSON = "application/json"
MAX_HASH_BODY_BYTES = 1024
# ``protected_entity``: a tenant id, a non-negative 32-bit integer (DSXA's), echoed in the answer
MAX_PROTECTED_ENTITY = 2**31 - 1
_VERDICT_DOC: dict[int | str, dict[str, Any]] = {
    200: {"model": DsxaVerdict, "description": "The verdict"},
    400: {"description": "Bad request (verdict-shaped body, reason says why)"},
    401: {"description": "Missing or wrong AUTH_TOKEN / AUTH header"},
}


def _body_doc(media_type: str, schema: dict[str, str]) -> dict[str, Any]:
    return {"requestBody": {"required": False, "content": {media_type: {"schema": schema}}}}


router = APIRouter(tags=["scan"], responses=_VERDICT_DOC)


def error_response(status_code: int, reason: str) -> Response:
    """A verdict-shaped error body (``detail`` added for generic HTTP clients).

    Logged at warning when an operator should look (a refused token, a server fault), else debug.
    """
    level = logging.WARNING if status_code in (401, 403) or status_code >= 500 else logging.DEBUG
    log.log(level, "request refused", extra={"status_code": status_code, "reason": reason})
    body = {
        "verdict": Verdict.NOT_SCANNED.value,
        "verdict_details": {"event_description": "File not scanned", "reason": reason, "threat_type": None},
        "detail": reason,
    }
    return Response(json.dumps(body), status_code=status_code, media_type=JSON)


class RawHeaders:
    """The request's headers read once into a dict (ASGI names are lower case): the scan routes
    look up to six names, and Starlette's ``Headers.get`` scans the whole list for each."""

    __slots__ = ("_raw",)

    def __init__(self, request: Request) -> None:
        self._raw: dict[bytes, bytes] = dict(request.scope["headers"])

    def get(self, name: str, default: str | None = None) -> str | None:
        value = self._raw.get(name.encode("latin-1"))
        return value.decode("latin-1") if value is not None else default


def _check_request(service: ScanService, headers: RawHeaders | Headers) -> Response | int:
    """The ``protected_entity`` of an acceptable request, or the error response to send.

    Also asks clamd its version again when that is due (in the background: see
    :mod:`dsxa_lite.api.clamd_version`)."""
    token = service.auth_token
    if token is not None:
        sent = headers.get("auth_token")
        if sent is None:
            sent = headers.get("auth")
        if sent is None or not hmac.compare_digest(sent.encode("latin-1"), token):
            return error_response(401, "missing or invalid AUTH_TOKEN")
    if service.ruleset.clamav is not None:
        follow_clamd(service)
    entity = headers.get("protected_entity")
    if entity is None:
        return 1
    entity = entity.strip()
    # ASCII digits only: int() would take a sign, "_" and any script's digits; the length check
    # keeps int() from parsing thousands of them
    if (
        not (entity.isascii() and entity.isdigit() and len(entity) <= 10)
        or int(entity) > MAX_PROTECTED_ENTITY
    ):
        return error_response(400, f"protected_entity must be an integer from 0 to {MAX_PROTECTED_ENTITY}")
    return int(entity)


def request_passwords(headers: RawHeaders | Headers) -> tuple[str, ...]:
    """The ``scan_password`` header (DSXA's, for encrypted archives), as a password list."""
    password = headers.get("scan_password")
    return (password,) if password else ()


def verdict_response(
    outcome: Outcome, started: float, protected_entity: int, metadata: str | None
) -> Response:
    """The SPEC §3 answer for ``outcome``, logged at debug as one structured line."""
    duration_us = int((time.perf_counter() - started) * 1_000_000)
    body = verdict_document(outcome, duration_us, protected_entity, metadata)
    return Response(json.dumps(_logged(body, outcome, duration_us)), media_type=JSON)


def _logged(body: dict[str, Any], outcome: Outcome, duration_us: int) -> dict[str, Any]:
    if log.isEnabledFor(logging.DEBUG):
        log.debug(
            "scan",
            extra={
                "scan_guid": body["scan_guid"],
                "verdict": outcome.verdict,
                "reason": outcome.reason,
                "file_type": outcome.file_type,
                "size": outcome.size,
                "sha256": outcome.sha256,
                "duration_us": duration_us,
                "container_files_scanned": outcome.container_files_scanned,
            },
        )
    return body


def _content_length(headers: RawHeaders) -> int | None:
    """The declared body size (the server refuses a body that does not match it), else None."""
    value = headers.get("content-length")
    return int(value) if value is not None and value.isdigit() else None


async def _scan_stream(request: Request, base64: bool) -> Response:
    started = time.perf_counter()
    service: ScanService = request.app.state.scan_service
    headers = RawHeaders(request)
    checked = _check_request(service, headers)
    if isinstance(checked, Response):
        return checked
    chunks: AsyncIterable[bytes] = request.stream()
    content_type = headers.get("x-content-type")
    declared = _content_length(headers)
    if base64 or (content_type is not None and content_type.strip().lower() == "base64"):
        chunks = decode_base64(chunks)
        declared = None  # the decoded size is known only at the end
    settings = service.settings
    try:
        body = await receive_body(
            chunks,
            max_size=settings.max_file_size_bytes,
            spool_threshold=settings.spool_threshold_bytes,
            spool_dir=settings.spool_dir,
            stream=lambda head: service.stream_scan(head, declared),
            keep_zip_tail=settings.archives,
        )
    except BadBody as exc:
        return error_response(400, str(exc))
    except ClientDisconnect:
        log.debug("client went away before the body was complete")
        return Response(status_code=499)
    except OSError as exc:  # the spool folder is full or gone: retryable for the core
        return error_response(503, f"cannot spool the body: {exc.strerror or type(exc).__name__}")
    try:
        outcome = await service.ascan(body, request_passwords(headers))
    except ScanFailed as exc:
        return error_response(500, str(exc))
    finally:
        body.close()
    return verdict_response(outcome, started, checked, headers.get("x-custom-metadata"))


@router.post(
    "/scan/binary/v2",
    openapi_extra=_body_doc("application/octet-stream", {"type": "string", "format": "binary"}),
)
async def scan_binary(request: Request) -> Response:
    """Scan the raw request body (chunked transfer allowed); ``X-Content-Type: base64`` says the
    body is base64 text, decoded as on ``/scan/base64/v2``; ``scan_password`` opens encrypted
    archives."""
    return await _scan_stream(request, base64=False)


@router.post("/scan/base64/v2", openapi_extra=_body_doc("text/plain", {"type": "string", "format": "byte"}))
async def scan_base64(request: Request) -> Response:
    """Scan a base64-encoded body (whitespace and line breaks allowed); bad base64 is a 400."""
    return await _scan_stream(request, base64=True)


def _hash_from_body(raw: bytes) -> str:
    text = raw.decode("utf-8", errors="replace").strip()
    if text.startswith(("{", '"')):
        try:
            value = json.loads(text)
        except ValueError:
            raise ValueError("body is neither a bare hash nor valid JSON") from None
        if isinstance(value, dict):
            value = value.get("hash")
        if not isinstance(value, str):
            raise ValueError('JSON body must be {"hash": "<sha256>"}')
        text = value
    return text


async def _scan_hash(request: Request) -> Response:
    started = time.perf_counter()
    service: ScanService = request.app.state.scan_service
    headers = RawHeaders(request)
    checked = _check_request(service, headers)
    if isinstance(checked, Response):
        return checked
    raw = b""
    async for chunk in request.stream():
        raw += chunk
        if len(raw) > MAX_HASH_BODY_BYTES:
            return error_response(400, f"invalid hash: body longer than {MAX_HASH_BODY_BYTES} bytes")
    try:
        outcome = service.lookup_hash(_hash_from_body(raw))
    except ValueError as exc:
        return error_response(400, f"invalid hash: {exc}")
    return verdict_response(outcome, started, checked, headers.get("x-custom-metadata"))


@router.post("/scan/by_hash", openapi_extra=_body_doc("text/plain", {"type": "string"}))
async def scan_by_hash(request: Request) -> Response:
    """Look a SHA-256 (bare text body) up: Malicious when on the block list (or EICAR's), else
    the verdict this scanner gave the file when it saw it, else Unknown (never seen)."""
    return await _scan_hash(request)


@router.post("/scan/by_hash/v2", openapi_extra=_body_doc("text/plain", {"type": "string"}))
async def scan_by_hash_v2(request: Request) -> Response:
    """Like ``/scan/by_hash``; the body may also be JSON ``{"hash": "<sha256>"}``."""
    return await _scan_hash(request)


def serving_routes() -> list[Route]:
    """The scan endpoints of ``router`` as plain Starlette routes, which is how the app serves them."""
    return [
        Route(route.path, route.endpoint, methods=sorted(route.methods or ()))
        for route in router.routes
        if isinstance(route, APIRoute)
    ]
