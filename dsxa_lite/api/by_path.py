"""DSXA's scan by path: ``GET /scan/by_path`` starts a scan of a file the scanner reads itself
(``Stream-Path`` header, only under ``DSXA_LITE_SCAN_ROOTS``) and answers ``Scanning`` with a
``scan_guid``; ``POST /result/by_path`` (``{"scan_guid": ...}``) answers the verdict once ready.

The file's size is taken from ``fstat`` when it is opened: a file over the size limit answers
``Non Compliant`` / ``File Size Too Large`` without a byte of it read (so without a hash:
``file_info`` is null, the size is in ``event_description``), and no more than that size is read
from a file within it, however much it grows meanwhile (a sparse or growing file would otherwise
hold a thread for as long as it takes to read).
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import time
import uuid
from collections.abc import AsyncIterator

import anyio.to_thread
from fastapi import APIRouter, Request, Response

from dsxa_lite.api.scan import JSON, RawHeaders, _check_request, error_response, request_passwords
from dsxa_lite.body import ReceivedBody, receive_body
from dsxa_lite.by_path import PathMissing, PathRefused, PathScan, PathScans, open_under_roots
from dsxa_lite.service import Outcome, ScanFailed, ScanService, verdict_document
from shared.models import Verdict

log = logging.getLogger("dsxa_lite.scan")
router = APIRouter(tags=["scan"])
CHUNK_BYTES = 1024 * 1024
_tasks: set[asyncio.Task[None]] = set()
# scans by path in flight at once; past it, 429 (each holds an open file and, past the spool
# threshold, a spool file until it is scanned)
MAX_IN_FLIGHT = 64
MAX_RESULT_BODY_BYTES = 4096  # POST /result/by_path: {"scan_guid": "<32 hex digits>"}


def _store(request: Request) -> PathScans[Outcome]:
    scans: PathScans[Outcome] = request.app.state.path_scans
    return scans


async def _chunks(fd: int, size: int) -> AsyncIterator[bytes]:
    """The file's first ``size`` bytes (fewer if it ends before)."""
    left = size
    while left > 0 and (chunk := await anyio.to_thread.run_sync(os.read, fd, min(CHUNK_BYTES, left))):
        left -= len(chunk)
        yield chunk


async def _run(service: ScanService, fd: int, scan: PathScan[Outcome], passwords: tuple[str, ...]) -> None:
    settings = service.settings
    try:
        size = (await anyio.to_thread.run_sync(os.fstat, fd)).st_size
        if size > settings.max_file_size_bytes:  # not read: no hash (see the module docstring)
            scan.result = service.scan(ReceivedBody("", size, b"", too_large=True))
            return
        body = await receive_body(
            _chunks(fd, size),
            max_size=settings.max_file_size_bytes,
            spool_threshold=settings.spool_threshold_bytes,
            spool_dir=settings.spool_dir,
        )
        try:
            scan.result = await service.ascan(body, passwords)
        finally:
            body.close()
    except (ScanFailed, OSError) as exc:
        scan.error = str(exc) or type(exc).__name__
    finally:
        os.close(fd)
        scan.duration_us = int((time.perf_counter() - scan.started) * 1_000_000)
        scan.done = True


def _document(
    guid: str, verdict: str, reason: str, scan: PathScan[Outcome], description: str
) -> dict[str, object]:
    return {
        "scan_guid": guid,
        "verdict": verdict,
        "verdict_details": {"event_description": description, "reason": reason, "threat_type": None},
        "file_info": None,
        "protected_entity": scan.protected_entity,
        "X-Custom-Metadata": scan.metadata,
    }


@router.get("/scan/by_path")
async def scan_by_path(request: Request) -> Response:
    """Start scanning the file named by ``Stream-Path`` (under the scan roots); ``Scanning``."""
    service: ScanService = request.app.state.scan_service
    headers = RawHeaders(request)
    checked = _check_request(service, headers)
    if isinstance(checked, Response):
        return checked
    if len(_tasks) >= MAX_IN_FLIGHT:
        return error_response(429, f"more than {MAX_IN_FLIGHT} scans by path in flight; retry later")
    try:  # in a thread: file system calls may block (a slow mount)
        fd, path = await anyio.to_thread.run_sync(
            open_under_roots, headers.get("stream-path") or "", service.settings.scan_roots
        )
    except PathRefused as exc:
        return error_response(403, str(exc))
    except PathMissing as exc:
        return error_response(404, str(exc))
    guid = uuid.uuid4().hex
    scan: PathScan[Outcome] = PathScan(checked, headers.get("x-custom-metadata"), time.perf_counter())
    _store(request).add(guid, scan)
    task = asyncio.create_task(_run(service, fd, scan, request_passwords(headers)))
    _tasks.add(task)
    task.add_done_callback(_tasks.discard)
    log.debug("scan by path started", extra={"scan_guid": guid, "path": str(path)})
    return Response(
        json.dumps(_document(guid, Verdict.SCANNING.value, "", scan, "Scan in progress")), media_type=JSON
    )


@router.post("/result/by_path")
async def result_by_path(request: Request) -> Response:
    """The verdict of a scan by path (``{"scan_guid": ...}``): ``Scanning`` until it is ready."""
    service: ScanService = request.app.state.scan_service
    checked = _check_request(service, RawHeaders(request))
    if isinstance(checked, Response):
        return checked
    received = b""
    async for chunk in request.stream():  # read up to the bound only, never the whole body
        received += chunk
        if len(received) > MAX_RESULT_BODY_BYTES:
            return error_response(413, f"body longer than {MAX_RESULT_BODY_BYTES} bytes")
    raw = received.decode("utf-8", "replace").strip()
    guid = raw
    if raw.startswith("{"):
        try:
            guid = str(json.loads(raw).get("scan_guid") or "")
        except (ValueError, AttributeError):
            return error_response(400, 'body must be {"scan_guid": "<guid>"}')
    scan = _store(request).get(guid)
    if scan is None:
        return error_response(404, f"unknown scan_guid {guid[:64]!r}")
    if not scan.done:
        document = _document(guid, Verdict.SCANNING.value, "", scan, "Scan in progress")
    elif scan.result is None:
        document = _document(
            guid, Verdict.NOT_SCANNED.value, scan.error or "", scan, "File could not be scanned"
        )
    else:
        document = verdict_document(scan.result, scan.duration_us, scan.protected_entity, scan.metadata, guid)
        if not scan.result.sha256:  # too large: not read, so no hash and no type to answer
            document["file_info"] = None
    return Response(json.dumps(document), media_type=JSON)
