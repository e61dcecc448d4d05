"""Run dsxa_lite.

``python -m dsxa_lite`` (or ``serve``) listens on ``DSXA_LITE_HOST``:``DSXA_LITE_PORT`` (default
0.0.0.0:5000) with httptools and uvloop. ``python -m dsxa_lite scan FILE...`` scans files once,
without a server, and prints one SPEC §3 verdict per line (exit status 1 if any is Malicious).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
from collections.abc import AsyncIterator, Sequence
from pathlib import Path

from dsxa_lite.body import receive_body
from dsxa_lite.service import ScanService, verdict_document
from dsxa_lite.settings import DsxaLiteSettings, get_settings
from shared.models import Verdict

CHUNK_BYTES = 1024 * 1024


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
        body = await receive_body(
            _file_chunks(path),
            max_size=settings.max_file_size_bytes,
            spool_threshold=settings.spool_threshold_bytes,
            spool_dir=settings.spool_dir,
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
    commands.add_parser("serve", help="serve the DSXA protocol (default)")
    scan = commands.add_parser("scan", help="scan files once and print their verdicts")
    scan.add_argument("files", nargs="+", type=Path)
    args = parser.parse_args(argv)
    settings = get_settings()
    if args.command == "scan":
        return asyncio.run(scan_files(settings, args.files))

    import uvicorn

    # log_config=None: uvicorn's records flow through our JSON handler (shared.logging)
    uvicorn.run(
        "dsxa_lite.app:app",
        host=settings.host,
        port=settings.port,
        http="httptools",
        loop="uvloop",
        log_config=None,
        ssl_certfile=str(settings.tls_certfile) if settings.use_tls and settings.tls_certfile else None,
        ssl_keyfile=str(settings.tls_keyfile) if settings.use_tls and settings.tls_keyfile else None,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
