"""Start real services for tests: free ports, health waits, clean stops.

The processes are spawned by :mod:`devstack.procs` (the one module that does, for the stack and the
tests alike); this module keeps the names the fixtures import and adds the test environment.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from devstack.emulators import redis_server, redis_server_binary
from devstack.probes import http_ok
from devstack.procs import PYTHON, ServiceProcess, free_port, uvicorn_argv, wait_for
from devstack.settings import REPO_ROOT

__all__ = [
    "PYTHON",
    "REPO_ROOT",
    "ServiceProcess",
    "base_env",
    "core_alone",
    "free_port",
    "http_ok",
    "redis_server",
    "redis_server_binary",
    "restartable_port",
    "uvicorn_argv",
    "wait_for",
]


def base_env(**extra: str) -> dict[str, str]:
    """The environment of a service a test starts: auth on with the test secrets (``tests.support.auth``)."""
    from tests.support.auth import AUTH_ENV

    env = {
        k: v for k, v in os.environ.items() if not k.startswith(("DSXCONNECT", "DSXA_LITE", "DSXCONNECTOR"))
    }
    env["PYTHONUNBUFFERED"] = "1"
    env["PYTHONPATH"] = str(REPO_ROOT)
    env.update(AUTH_ENV)
    env.update(extra)
    return env


@contextmanager
def core_alone(folder: Path, logs_dir: Path, name: str, **env: str) -> Iterator[tuple[str, str]]:
    """A core API process on a free port with a redis-server of its own in ``folder`` (no scanner,
    no workers); ``env`` adds to :func:`base_env`. Yields the core's URL and Redis's."""
    with redis_server(folder / "redis") as (redis_url, _):
        port = free_port()
        settings = {
            "DSXCONNECT_REDIS_URL": redis_url,
            "DSXCONNECT_SCANNER__SCAN_BINARY_URL": f"http://127.0.0.1:{free_port()}/scan/binary/v2",
            **env,
        }
        proc = ServiceProcess(
            f"{name}-{port}", uvicorn_argv("dsx_connect.app:app", port), base_env(**settings), logs_dir
        )
        proc.start()
        try:
            proc.wait_healthy(f"http://127.0.0.1:{port}/healthz")
            yield f"http://127.0.0.1:{port}", redis_url
        finally:
            proc.stop()


def restartable_port() -> int:
    """A free port for a server that clients try while it is down (started late, killed and
    restarted). Every :func:`free_port` now lies below the ephemeral range, which is what such a
    server needs; the name stays to say why the test cares."""
    return free_port()
