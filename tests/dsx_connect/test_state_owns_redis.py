"""Only ``dsx_connect/state/`` (and the client factory) calls Redis.

An AST scan of every module of the core: a call of a Redis command (a method of ``redis.Redis``, a
pipeline or a pub/sub) on a receiver that is a Redis client by name (``redis``, ``r``, ``client``,
``pipe``, …), or reaching into a store's client (``jobs.redis``), outside the state layer fails
here, naming the file and line. A route or worker that needs Redis asks a state module.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest
import redis
import redis.client

pytestmark = pytest.mark.unit

CORE = Path(__file__).resolve().parents[2] / "dsx_connect"
ALLOWED = ("state/", "redis_client.py", "redis_sentinel.py")
COMMANDS = (
    {n for n in dir(redis.Redis) if not n.startswith("_")}
    | {n for n in dir(redis.client.Pipeline) if not n.startswith("_")}
    | {n for n in dir(redis.client.PubSub) if not n.startswith("_")}
) - {"close", "reset", "client", "lock", "from_url", "from_pool", "get_encoder", "get_retry", "set_retry"}
CLIENT_NAME = re.compile(r"^(a?redis|r|pipe|pipeline|pubsub|ps|rc)$", re.IGNORECASE)


def _receiver_name(node: ast.expr) -> str:
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Attribute):
        return node.attr
    return ""


FACTORIES = {"get_redis", "async_redis"}  # dsx_connect.redis_client


def _is_client(node: ast.expr) -> bool:
    # a bare ``client`` is the Redis client by this code's convention; ``self.client`` may be httpx's
    if isinstance(node, ast.Call) and _receiver_name(node.func) in FACTORIES:
        return True  # get_redis().hget(...)
    return bool(CLIENT_NAME.match(_receiver_name(node))) or (
        isinstance(node, ast.Name) and node.id == "client"
    )


def offences(source: str) -> list[tuple[int, str]]:
    """(line, what) of each Redis call in ``source``."""
    found: list[tuple[int, str]] = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute):
            receiver = node.func.value
            if node.func.attr in COMMANDS and _is_client(receiver):
                found.append((node.lineno, ast.unparse(node.func)))
        if (
            isinstance(node, ast.Attribute)
            and node.attr == "redis"
            and not (isinstance(node.value, ast.Name) and node.value.id in ("self", "redis", "cls"))
        ):
            found.append((node.lineno, ast.unparse(node)))
    return found


def _modules() -> list[Path]:
    return sorted(
        p
        for p in CORE.rglob("*.py")
        if not str(p.relative_to(CORE)).startswith(ALLOWED) and "migrations" not in p.parts
    )


def test_no_module_outside_the_state_layer_calls_redis() -> None:
    report = []
    for path in _modules():
        name = str(path.relative_to(CORE))
        report += [f"{name}:{line}: {what}" for line, what in offences(path.read_text(encoding="utf-8"))]
    assert not report, "Redis called outside dsx_connect/state/:\n" + "\n".join(report)


@pytest.mark.parametrize(
    ("source", "caught"),
    [
        ("self.redis.hset('k', 'f', 'v')", True),
        ("jobs.redis.ttl(key)", True),
        ("ScheduleStore(registry.redis).delete(uuid)", True),
        ("RedisIndex(ctx.results.redis, 100)", True),
        ("await hub.redis.exists(k)", True),
        ("pipe = client.pipeline(transaction=False)", True),
        ("r.xadd('s', {})", True),
        ("settings.get('x')", False),
        ("http.get(url)", False),
        ("self.client.get(url)", False),
        ("client.hget('k', 'f')", True),
        ("get_redis().hget('k', 'f')", True),
        ("job_owner(get_redis(), job_id)", False),
        ("import redis\nredis.exceptions.ConnectionError", False),
    ],
)
def test_the_scan_catches_a_redis_call(source: str, caught: bool) -> None:
    assert bool(offences(source)) is caught
