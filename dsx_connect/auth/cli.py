"""Scoped enrollment tokens and connector identities from a shell, through the core's API.

    python -m dsx_connect.auth.cli mint --connector-name sharepoint-hr [--expires-in 86400] [--label ...]
    python -m dsx_connect.auth.cli mint --connector-uuid 5f0c...
    python -m dsx_connect.auth.cli list
    python -m dsx_connect.auth.cli revoke etok-1a2b3c
    python -m dsx_connect.auth.cli reset <connector uuid>

``inv enrollment-token`` runs it. The core is ``--url`` (``DSXCONNECT_URL``, default
``http://127.0.0.1:8586``); the operator key is ``--api-key`` / ``DSXCONNECT_API_KEY``, else the local
stack's ``.run/auth.json``. ``--ca-bundle`` (``DSXCONNECT_CA_BUNDLE``) verifies an HTTPS core.
A minted token is printed once, on its own line, then its id and binding.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path
from typing import Any

import httpx

API = "/dsx-connect/api/v1"


def _api_key(given: str | None) -> str:
    if given:
        return given
    if found := os.environ.get("DSXCONNECT_API_KEY"):
        return found
    auth_file = Path(os.environ.get("DSX_RUN_DIR", ".run")) / "auth.json"
    if auth_file.is_file():
        return str(json.loads(auth_file.read_text())["operator_key"])
    sys.exit("no operator key: pass --api-key or set DSXCONNECT_API_KEY")


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="dsx_connect.auth.cli", description=__doc__.split("\n\n")[0])
    parser.add_argument("--url", default=os.environ.get("DSXCONNECT_URL", "http://127.0.0.1:8586"))
    parser.add_argument("--api-key", default=None)
    parser.add_argument("--ca-bundle", default=os.environ.get("DSXCONNECT_CA_BUNDLE"))
    commands = parser.add_subparsers(dest="command", required=True)
    mint = commands.add_parser("mint", help="mint a token scoped to one connector (printed once)")
    binding = mint.add_mutually_exclusive_group(required=True)
    binding.add_argument("--connector-name")
    binding.add_argument("--connector-uuid")
    mint.add_argument("--expires-in", type=int, default=None, help="seconds (60 .. 366 days)")
    mint.add_argument("--label", default=None)
    commands.add_parser("list", help="scoped tokens still valid (never their value)")
    revoke = commands.add_parser("revoke", help="revoke a scoped token now")
    revoke.add_argument("token_id")
    reset = commands.add_parser("reset", help="forget a connector's identity (keys and registration)")
    reset.add_argument("uuid")
    return parser


def run(argv: list[str] | None = None, transport: httpx.BaseTransport | None = None) -> int:
    """Execute one command; returns the exit status (0 on success)."""
    args = _parser().parse_args(argv)
    verify: Any = args.ca_bundle or True
    with httpx.Client(
        base_url=args.url.rstrip("/") + API,
        headers={"X-API-Key": _api_key(args.api_key)},
        timeout=15.0,
        verify=verify,
        transport=transport,
    ) as http:
        if args.command == "mint":
            body = {
                "connector_name": args.connector_name,
                "connector_uuid": args.connector_uuid,
                "expires_in_s": args.expires_in,
                "label": args.label,
            }
            answer = http.post(
                "/auth/enrollment-tokens", json={k: v for k, v in body.items() if v is not None}
            )
        elif args.command == "list":
            answer = http.get("/auth/enrollment-tokens")
        elif args.command == "revoke":
            answer = http.delete(f"/auth/enrollment-tokens/{args.token_id}")
        else:
            answer = http.post(f"/auth/connectors/{args.uuid}/reset")
    try:
        data = answer.json()
    except ValueError:
        data = {"message": answer.text}
    if answer.status_code >= 400:
        print(
            f"error {answer.status_code}: {data.get('message', data) if isinstance(data, dict) else data}",
            file=sys.stderr,
        )
        return 1
    if args.command == "mint":
        print(data["token"])
        binding = data.get("connector_name") or data.get("connector_uuid")
        print(
            f"id {data['id']}  bound to {binding}  expires {data.get('expires_at') or 'never'}",
            file=sys.stderr,
        )
    else:
        print(json.dumps(data, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(run())
