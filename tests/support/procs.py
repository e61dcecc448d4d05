"""Start real services for tests: free ports, health waits, clean stops.

The processes are spawned by :mod:`devstack.procs` (the one module that does, for the stack and the
tests alike); this module keeps the names the fixtures import and adds the test environment.
"""

from __future__ import annotations

import os

from devstack.emulators import redis_server, redis_server_binary
from devstack.probes import http_ok
from devstack.procs import PYTHON, ServiceProcess, free_port, uvicorn_argv, wait_for
from devstack.settings import REPO_ROOT

__all__ = [
    "PYTHON",
    "REPO_ROOT",
    "ServiceProcess",
    "base_env",
    "free_port",
    "http_ok",
    "redis_server",
    "redis_server_binary",
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
