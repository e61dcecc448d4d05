"""Command line of every connector: ``python -m connectors.<name> [serve|list|estimate|read]``.

``serve`` (the default) runs the app under uvicorn on ``DSXCONNECTOR_PORT`` (HTTPS when
``DSXCONNECTOR_USE_TLS``). The one-shot commands use the connector alone, with no core: ``list``
prints the locations a full scan would submit, ``estimate`` their count and bytes, ``read``
writes one item's bytes to stdout. Handy to try a filter or a new connector quickly.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from collections.abc import Callable, Sequence

from shared.connector.base import Connector


def main(make_connector: Callable[[], Connector], app_path: str, argv: Sequence[str] | None = None) -> int:
    """Parse ``argv`` and run the command; the exit status."""
    parser = argparse.ArgumentParser(prog=f"python -m {app_path.split(':')[0].rsplit('.', 1)[0]}")
    commands = parser.add_subparsers(dest="command")
    serve = commands.add_parser("serve", help="run the connector service (default)")
    serve.add_argument("--host", default="0.0.0.0")
    serve.add_argument("--port", type=int, default=None)
    listing = commands.add_parser("list", help="print the locations a full scan would submit")
    listing.add_argument("--limit", type=int, default=None)
    commands.add_parser("estimate", help="count the items and bytes a full scan would submit")
    read = commands.add_parser("read", help="write one item's bytes to stdout")
    read.add_argument("location")
    args = parser.parse_args(argv)

    connector = make_connector()
    if args.command in (None, "serve"):
        return _serve(connector, app_path, getattr(args, "host", "0.0.0.0"), getattr(args, "port", None))
    return asyncio.run(_one_shot(connector, args))


def _serve(connector: Connector, app_path: str, host: str, port: int | None) -> int:
    import uvicorn

    s = connector.settings
    uvicorn.run(
        app_path,
        host=host,
        port=port or s.port,
        ssl_certfile=s.tls_certfile if s.use_tls else None,
        ssl_keyfile=s.tls_keyfile if s.use_tls else None,
        log_level=s.log_level.lower(),
    )
    return 0


async def _one_shot(connector: Connector, args: argparse.Namespace) -> int:
    try:
        if args.command == "list":
            shown = 0
            async for item in connector.enumerate():
                if args.limit is not None and shown >= args.limit:
                    break
                print(item.location)
                shown += 1
        elif args.command == "estimate":
            print(json.dumps((await connector.estimate()).model_dump()))
        elif args.command == "read":
            content = await connector.read(args.location)
            out = sys.stdout.buffer
            if content.data is not None:
                out.write(content.data)
            elif content.chunks is not None:
                async for chunk in content.chunks:
                    out.write(chunk)
            out.flush()
    except Exception as exc:
        err = connector.classify_error(exc)
        print(f"error: {err.message}", file=sys.stderr)
        return 1
    finally:
        await connector.aclose()
    return 0
