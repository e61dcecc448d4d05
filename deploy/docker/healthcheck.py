#!/usr/bin/env python3
"""Health check of every dsx-connect image (``/usr/local/bin/dsx-healthcheck``); exit 0 when healthy.

``dsx-healthcheck``                     what ``dsx-entrypoint`` started (``$DSX_ROLE_FILE``): the API's
                                        ``/healthz``, or a worker's Celery ping
``dsx-healthcheck http PORT [PATH]``    ``GET http(s)://127.0.0.1:PORT{PATH}`` (default ``/healthz``)
                                        answers 200; HTTPS when ``$DSX_HEALTH_TLS_ENV`` (the names of
                                        the service's USE_TLS variables, CSV) is true. The certificate is
                                        not verified: this is the process checking itself on loopback.
``dsx-healthcheck worker [NODE]``       ``celery inspect ping`` of this container's worker node
                                        (``<short>@<hostname>``): the worker is connected to Redis and
                                        answers control messages. A solo worker answers between tasks,
                                        so give the check a period longer than one batch.
                                        ``$DSX_HEALTHCHECK_TIMEOUT``: seconds to wait for the pong (10).
"""

from __future__ import annotations

import os
import ssl
import subprocess
import sys
import urllib.error
import urllib.request
from pathlib import Path

ROLE_FILE = "/tmp/dsx-role"
CELERY_APP = "dsx_connect.workers.celery_app:celery_app"
TRUE = frozenset({"1", "true", "yes", "on"})


def check_http(port: int, path: str = "/healthz", tls_env: str = "", timeout: float = 3.0) -> bool:
    """True if the service on this host answers 200 on ``path``."""
    tls = any(os.environ.get(name, "").strip().lower() in TRUE for name in tls_env.split(",") if name)
    url = f"{'https' if tls else 'http'}://127.0.0.1:{port}{path}"
    context = ssl._create_unverified_context() if tls else None  # loopback self-check
    try:
        with urllib.request.urlopen(url, timeout=timeout, context=context) as resp:
            return resp.status == 200
    except (urllib.error.URLError, OSError) as exc:
        print(f"GET {url}: {exc}", file=sys.stderr)
        return False


def check_worker(node: str, timeout: float = 10.0) -> bool:
    """True if the Celery worker ``node`` answers a ping."""
    cmd = [sys.executable, "-m", "celery", "-A", CELERY_APP, "inspect", "ping", "-d", node]
    cmd += ["--timeout", str(timeout)]
    try:
        result = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout + 20, check=False)
    except subprocess.TimeoutExpired:
        print(f"celery inspect ping {node}: no answer", file=sys.stderr)
        return False
    if result.returncode != 0 or "pong" not in result.stdout:
        print(
            f"celery inspect ping {node}: {(result.stdout + result.stderr).strip()[-400:]}", file=sys.stderr
        )
        return False
    return True


def main(argv: list[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    if not args:
        try:
            role = Path(os.environ.get("DSX_ROLE_FILE", ROLE_FILE)).read_text().split()
        except OSError:
            role = ["api"]
        args = role if role and role[0] == "worker" else ["api"]
    kind = args[0]
    if kind == "api":
        ok = check_http(8586, "/healthz", "DSXCONNECT_USE_TLS,USE_TLS")
    elif kind == "http":
        port = int(args[1]) if len(args) > 1 else 8586
        path = args[2] if len(args) > 2 else "/healthz"
        ok = check_http(port, path, os.environ.get("DSX_HEALTH_TLS_ENV", ""))
    elif kind == "worker":
        if len(args) > 1:
            node = args[1]
        else:
            try:
                node = Path(os.environ.get("DSX_ROLE_FILE", ROLE_FILE)).read_text().split()[1]
            except (OSError, IndexError):
                print("no worker node recorded: name it (dsx-healthcheck worker scan@HOST)", file=sys.stderr)
                return 1
        ok = check_worker(node, float(os.environ.get("DSX_HEALTHCHECK_TIMEOUT", "10")))
    else:
        print(
            f"usage: dsx-healthcheck [api | http PORT [PATH] | worker [NODE]] (got {kind!r})", file=sys.stderr
        )
        return 2
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
