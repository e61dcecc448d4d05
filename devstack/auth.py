"""The stack's secrets (SPEC §8): enrollment token, operator key, server key and Redis password."""

from __future__ import annotations

import json
import os
import secrets
from pathlib import Path

from devstack.settings import StackConfig

AUTH_FILE = "auth.json"
_SECRET_NAMES = ("enrollment_token", "operator_key", "server_key", "redis_password")


def stack_secrets(run_dir: Path) -> dict[str, str]:
    """The enrollment token, operator API key, server key and Redis password of the stack in
    ``run_dir``: generated once into ``auth.json`` (mode 0600) and kept, so a restarted stack keeps
    its keys. A file from before a secret existed gets that one added; the others stay."""
    path = run_dir / AUTH_FILE
    found: dict[str, str] = {}
    try:
        loaded = json.loads(path.read_text())
        if isinstance(loaded, dict):
            found = {n: loaded[n] for n in _SECRET_NAMES if isinstance(loaded.get(n), str) and loaded[n]}
    except (OSError, ValueError):
        pass
    if len(found) == len(_SECRET_NAMES):
        return found
    made = {name: found.get(name) or secrets.token_urlsafe(24) for name in _SECRET_NAMES}
    run_dir.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as handle:
        json.dump(made, handle)
    tmp.replace(path)
    return made


def redis_config(run_dir: Path) -> Path:
    """``redis/redis.conf`` of the run (mode 0600): the password, so that it is not on the command line."""
    folder = run_dir / "redis"
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "redis.conf"
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(f"requirepass {stack_secrets(run_dir)['redis_password']}\n")
    os.chmod(path, 0o600)
    return path


def auth_env(cfg: StackConfig) -> tuple[dict[str, str], dict[str, str]]:
    """The secrets as the core (and workers) and the connector read them."""
    found = stack_secrets(cfg.run_dir)
    core = {
        "DSXCONNECT_AUTH__ENROLLMENT_TOKENS": found["enrollment_token"],
        "DSXCONNECT_AUTH__API_KEYS": found["operator_key"],
        "DSXCONNECT_AUTH__SERVER_KEY": found["server_key"],
    }
    # the connector keeps its DSX-HMAC pair across restarts: a fleet token alone cannot re-enroll its uuid
    key_file = str(Path(cfg.run_dir) / "connector-hmac.key")
    return core, {
        "DSXCONNECTOR_ENROLLMENT_TOKEN": found["enrollment_token"],
        "DSXCONNECTOR_AUTH__KEY_FILE": key_file,
    }


def api_headers(cfg: StackConfig) -> dict[str, str]:
    """What an operator's request to this stack's core carries."""
    return {"X-API-Key": stack_secrets(cfg.run_dir)["operator_key"]}
