#!/usr/bin/env python3
"""Entry point of every dsx-connect image (``/usr/local/bin/dsx-entrypoint``); standard library only.

1. Docker/Kubernetes secret files: for each secret variable NAME of :data:`SECRET_VARS`, a
   ``NAME_FILE=/run/secrets/x`` in the environment sets ``NAME`` to the file's content (trailing
   newline dropped). ``NAME`` itself, when set, wins. Other ``*_FILE`` variables are left alone
   (``DSXA_LITE_BLOCKLIST_FILE`` is a path, not a secret).
2. The command:

   ``api``
       the core API under uvicorn on port 8586; HTTPS when ``DSXCONNECT_USE_TLS`` (or the short
       alias ``USE_TLS``) is true, with ``DSXCONNECT_TLS_CERTFILE`` / ``DSXCONNECT_TLS_KEYFILE``;
       ``DSXCONNECT_API_WORKERS`` uvicorn worker processes (1).
   ``worker QUEUE [--pool P] [--concurrency N] [celery args...]``
       the Celery worker of one queue (a queue name of SPEC §2 or its short name ``scan``,
       ``action``, ``result``, ``notify``), node name ``<short>@<hostname>``. Defaults as
       ``devstack.graph``: the scan queue runs ``--pool prefork --concurrency 2``, the light
       queues ``--pool solo``.
   anything else
       run as is (``python -m connectors.filesystem serve``, ``celery ...``, ``sh``).

The role (``api`` or ``worker <node>``) is written to ``$DSX_ROLE_FILE`` (``/tmp/dsx-role``) so that
``dsx-healthcheck`` knows what to probe.
"""

from __future__ import annotations

import os
import socket
import sys
from collections.abc import Mapping, MutableMapping, Sequence
from pathlib import Path

CELERY_APP = "dsx_connect.workers.celery_app:celery_app"
QUIET_FLAGS = ("--without-gossip", "--without-mingle", "--without-heartbeat")
API_APP = "dsx_connect.app:app"
API_PORT = 8586
ROLE_FILE = "/tmp/dsx-role"

#: short worker name -> queue (SPEC §2; the node names of devstack.graph)
WORKER_QUEUES = {
    "scan": "scan_request_queue",
    "action": "verdict_action_queue",
    "result": "scan_result_queue",
    "notify": "scan_result_notification_queue",
}
DEFAULT_SCAN_CONCURRENCY = 2

#: variables that may come from a file through ``NAME_FILE`` (secrets only)
SECRET_VARS = (
    # core
    "DSXCONNECT_REDIS_URL",
    "DSXCONNECT_SCANNER__AUTH_TOKEN",
    "DSXCONNECT_AUTH__ENROLLMENT_TOKENS",
    "DSXCONNECT_AUTH__API_KEYS",
    "DSXCONNECT_AUTH__SERVER_KEY",
    "DSXCONNECT_SUPERLOG__SPLUNK__TOKEN",
    "DSXCONNECT_SUPERLOG__SENTINEL__CLIENT_SECRET",
    "DSXCONNECT_SUPERLOG__REDACT__SALT",
    # connectors
    "DSXCONNECTOR_ENROLLMENT_TOKEN",
    "DSXCONNECTOR_AUTH__HMAC_KEY_ID",
    "DSXCONNECTOR_AUTH__HMAC_SECRET",
    "DSXCONNECTOR_WEBHOOK__SECRET",
    "DSXCONNECTOR_SP_CLIENT_SECRET",
    "AWS_ACCESS_KEY_ID",
    "AWS_SECRET_ACCESS_KEY",
    "AWS_SESSION_TOKEN",
    "DSXCONNECTOR_AWS_SECRET_ACCESS_KEY",
    "DSXCONNECTOR_AWS_SESSION_TOKEN",
    "AZURE_STORAGE_CONNECTION_STRING",
    "DSXCONNECTOR_AZURE_CONNECTION_STRING",
    "DSXCONNECTOR_AZURE_ACCOUNT_KEY",
    "DSXCONNECTOR_AZURE_SAS_TOKEN",
    # scanner
    "DSXA_LITE_AUTH_TOKEN",
)

TRUE = frozenset({"1", "true", "yes", "on"})


class EntrypointError(Exception):
    """A configuration problem, reported in one line without a traceback."""


def resolve_secret_files(env: MutableMapping[str, str]) -> list[str]:
    """Fill ``NAME`` from ``NAME_FILE`` for each secret variable; the names set this way."""
    resolved = []
    for name in SECRET_VARS:
        path = env.get(f"{name}_FILE")
        if not path or env.get(name):
            continue
        try:
            value = Path(path).read_text(encoding="utf-8")
        except OSError as exc:
            raise EntrypointError(f"{name}_FILE={path}: cannot read the file ({exc.strerror})") from None
        env[name] = value.rstrip("\r\n")
        resolved.append(name)
    return resolved


def _truthy(value: str | None) -> bool:
    return (value or "").strip().lower() in TRUE


def api_argv(env: Mapping[str, str]) -> list[str]:
    """uvicorn's command line for the core API, HTTPS when the settings ask for it."""
    argv = [sys.executable, "-m", "uvicorn", API_APP, "--host", "0.0.0.0", "--port", str(API_PORT)]
    argv += ["--proxy-headers", "--timeout-graceful-shutdown", "20"]
    workers = api_workers(env)
    if workers > 1:
        argv += ["--workers", str(workers)]
    if _truthy(env.get("DSXCONNECT_USE_TLS", env.get("USE_TLS"))):
        cert, key = env.get("DSXCONNECT_TLS_CERTFILE", ""), env.get("DSXCONNECT_TLS_KEYFILE", "")
        if not cert or not key:
            raise EntrypointError(
                "DSXCONNECT_USE_TLS is true: set DSXCONNECT_TLS_CERTFILE and DSXCONNECT_TLS_KEYFILE"
            )
        for var, path in (("DSXCONNECT_TLS_CERTFILE", cert), ("DSXCONNECT_TLS_KEYFILE", key)):
            if not os.access(path, os.R_OK):
                raise EntrypointError(f"{var}={path}: no such file, or not readable by uid {os.getuid()}")
        argv += ["--ssl-certfile", cert, "--ssl-keyfile", key]
    return argv


MAX_API_WORKERS = 64


def api_workers(env: Mapping[str, str]) -> int:
    """``DSXCONNECT_API_WORKERS``: uvicorn worker processes of the API (1 when unset)."""
    raw = (env.get("DSXCONNECT_API_WORKERS") or "").strip()
    if not raw:
        return 1
    if not raw.isdigit() or not 1 <= int(raw) <= MAX_API_WORKERS:
        raise EntrypointError(
            f"DSXCONNECT_API_WORKERS={raw!r} is not a number of processes (1-{MAX_API_WORKERS})"
        )
    return int(raw)


def worker_argv(args: Sequence[str], env: Mapping[str, str], hostname: str | None = None) -> list[str]:
    """celery's command line for the worker of one queue (see the module docstring)."""
    if not args:
        raise EntrypointError(f"worker: name a queue ({', '.join(WORKER_QUEUES.values())})")
    wanted, extra = args[0], list(args[1:])
    short = (
        wanted
        if wanted in WORKER_QUEUES
        else next((s for s, q in WORKER_QUEUES.items() if q == wanted), None)
    )
    if short is None:
        raise EntrypointError(
            f"worker: unknown queue {wanted!r} (use one of {', '.join(WORKER_QUEUES.values())})"
        )
    queue = WORKER_QUEUES[short]
    node = f"{short}@{hostname or socket.gethostname()}"
    argv = [sys.executable, "-m", "celery", "-A", CELERY_APP, "worker", "-Q", queue, "-n", node]
    argv += ["--loglevel", env.get("DSXCONNECT_LOG_LEVEL", "INFO").upper()]
    # As devstack.graph: nothing uses gossip, mingle or event heartbeats, and their reconnect path
    # is what broke after a Redis restart (Celery 5.7). `celery inspect ping` (liveness) still works.
    argv += [flag for flag in QUIET_FLAGS if flag not in extra]
    pool = _option(extra, "--pool", "-P")
    if pool is None:
        pool = "prefork" if short == "scan" else "solo"
        argv += ["--pool", pool]
    has_concurrency = any(a in ("-c", "--concurrency") or a.startswith("--concurrency=") for a in extra)
    if pool == "prefork" and not has_concurrency:
        argv += ["--concurrency", str(DEFAULT_SCAN_CONCURRENCY)]
    if pool == "solo":  # solo runs one task at a time: a concurrency flag would only mislead
        extra = _drop_option(extra, "--concurrency", "-c")
    return argv + extra


def _option(args: Sequence[str], *names: str) -> str | None:
    for i, arg in enumerate(args):
        for name in names:
            if arg == name and i + 1 < len(args):
                return args[i + 1]
            if arg.startswith(name + "="):
                return arg.split("=", 1)[1]
    return None


def _drop_option(args: Sequence[str], *names: str) -> list[str]:
    out: list[str] = []
    skip = False
    for arg in args:
        if skip:
            skip = False
            continue
        if arg in names:
            skip = True
            continue
        if any(arg.startswith(n + "=") for n in names):
            continue
        out.append(arg)
    return out


def require_server_key(env: Mapping[str, str]) -> None:
    """The core (API and workers) needs ``DSXCONNECT_AUTH__SERVER_KEY`` while auth is on: every
    connector's DSX-HMAC secret derives from it, so it lives in the deployment's secrets, never only
    in Redis (SPEC §8)."""
    auth_on = (env.get("DSXCONNECT_AUTH__ENABLED") or "true").strip().lower() not in (
        "0",
        "false",
        "no",
        "off",
    )
    if auth_on and not (env.get("DSXCONNECT_AUTH__SERVER_KEY") or "").strip():
        raise EntrypointError(
            "DSXCONNECT_AUTH__SERVER_KEY is required (compose: python3 make_secrets.py core.env; Helm: the "
            "chart generates it into its Secret; or DSXCONNECT_AUTH__SERVER_KEY_FILE)"
        )


def command(argv: Sequence[str], env: Mapping[str, str]) -> tuple[str, list[str]]:
    """(role, command line) for the entrypoint's arguments."""
    if not argv or argv[0] == "api":
        return "api", api_argv(env)
    if argv[0] == "worker":
        cmd = worker_argv(argv[1:], env)
        return f"worker {cmd[cmd.index('-n') + 1]}", cmd
    return "other", list(argv)


def main(argv: Sequence[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    try:
        resolve_secret_files(os.environ)
        role, cmd = command(args, os.environ)
        if role != "other":
            require_server_key(os.environ)
    except EntrypointError as exc:
        print(f"dsx-entrypoint: error: {exc}", file=sys.stderr)
        return 2
    role_file = os.environ.get("DSX_ROLE_FILE", ROLE_FILE)
    try:
        Path(role_file).write_text(role + "\n")
    except OSError:
        pass  # a read-only /tmp only costs the health check its hint
    try:
        os.execvp(cmd[0], cmd)
    except OSError as exc:
        print(f"dsx-entrypoint: cannot run {cmd[0]!r}: {exc.strerror}", file=sys.stderr)
        return 127
    return 0  # pragma: no cover - execvp does not return


if __name__ == "__main__":
    sys.exit(main())
