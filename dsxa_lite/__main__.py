"""Run dsxa_lite.

``python -m dsxa_lite`` (or ``serve [--host H] [--port P]``) listens on ``DSXA_LITE_HOST``:
``DSXA_LITE_PORT`` (default 127.0.0.1:5000: only this machine; containers set 0.0.0.0) with
httptools (request headers bounded: ``dsxa_lite.api.http``) and uvloop, and warns at start when
it serves without a token on another address. ``python -m dsxa_lite scan FILE...`` scans files
once, without a server, and prints one SPEC §3 verdict per line (exit status 1 if any is Malicious).
"""

from __future__ import annotations

import argparse
import asyncio
import ipaddress
import json
import logging
import sys
import time
from collections.abc import AsyncIterator, Sequence
from functools import partial
from pathlib import Path

from dsxa_lite.body import receive_body
from dsxa_lite.service import ScanService, verdict_document
from dsxa_lite.settings import DsxaLiteSettings, get_settings
from shared.models import Verdict

CHUNK_BYTES = 1024 * 1024
# uvicorn's httptools protocol, bounding request headers (dsxa_lite/api/http.py)
BOUNDED_HTTPTOOLS = "dsxa_lite.api.http:BoundedHttpToolsProtocol"

log = logging.getLogger("dsxa_lite")


def is_loopback(host: str) -> bool:
    """Whether ``host`` only reaches this machine (``localhost``, 127.0.0.0/8, ``::1``)."""
    if host.strip().lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def exposure_warning(host: str, has_token: bool) -> str | None:
    """The warning to log when the scanner would serve without a token beyond loopback."""
    if has_token or is_loopback(host):
        return None
    return (
        f"dsxa_lite listens on {host} without a token: anyone who reaches this address can scan "
        "files and read verdicts; set DSXA_LITE_AUTH_TOKEN (the core sends it as "
        "DSXCONNECT_SCANNER__AUTH_TOKEN) or bind 127.0.0.1"
    )


async def _file_chunks(path: Path) -> AsyncIterator[bytes]:
    with path.open("rb") as handle:
        while chunk := handle.read(CHUNK_BYTES):
            yield chunk


async def scan_files(settings: DsxaLiteSettings, paths: Sequence[Path]) -> int:
    """Scan ``paths`` in turn, print each verdict as a JSON line; 1 if any is Malicious."""
    service = ScanService(settings)
    try:
        return await _scan_each(service, settings, paths)
    finally:
        service.close()


async def _scan_each(service: ScanService, settings: DsxaLiteSettings, paths: Sequence[Path]) -> int:
    status = 0
    for path in paths:
        started = time.perf_counter()
        size = path.stat().st_size
        body = await receive_body(
            _file_chunks(path),
            max_size=settings.max_file_size_bytes,
            spool_threshold=settings.spool_threshold_bytes,
            spool_dir=settings.spool_dir,
            stream=partial(service.stream_scan, declared_size=size),
        )
        try:
            outcome = await service.ascan(body)
        finally:
            body.close()
        duration_us = int((time.perf_counter() - started) * 1_000_000)
        print(json.dumps(verdict_document(outcome, duration_us, custom_metadata=f"file-loc:{path}")))
        if outcome.verdict == Verdict.MALICIOUS:
            status = 1
    return status


def main(argv: Sequence[str] | None = None) -> int:
    """Command line entry point (see the module docstring)."""
    parser = argparse.ArgumentParser(prog="python -m dsxa_lite", description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command")
    serve = commands.add_parser("serve", help="serve the DSXA protocol (default)")
    serve.add_argument("--host", help="address to bind (DSXA_LITE_HOST, default 127.0.0.1)")
    serve.add_argument("--port", type=int, help="port (DSXA_LITE_PORT, default 5000)")
    scan = commands.add_parser("scan", help="scan files once and print their verdicts")
    scan.add_argument("files", nargs="+", type=Path)
    args = parser.parse_args(argv)
    settings = get_settings()
    if args.command == "scan":
        return asyncio.run(scan_files(settings, args.files))

    import uvicorn

    from shared.logging import configure_logging

    host = getattr(args, "host", None) or settings.host
    port = getattr(args, "port", None) or settings.port
    configure_logging("dsxa_lite")
    warning = exposure_warning(host, settings.auth_token is not None)
    if warning is not None:
        log.warning(warning, extra={"host": host})
    # log_config=None: uvicorn's records flow through our JSON handler (shared.logging)
    uvicorn.run(
        "dsxa_lite.app:app",
        host=host,
        port=port,
        http=BOUNDED_HTTPTOOLS,  # httptools, with a bound on request headers
        loop="uvloop",
        log_config=None,
        ssl_certfile=str(settings.tls_certfile) if settings.use_tls and settings.tls_certfile else None,
        ssl_keyfile=str(settings.tls_keyfile) if settings.use_tls and settings.tls_keyfile else None,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
