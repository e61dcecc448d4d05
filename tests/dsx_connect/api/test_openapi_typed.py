"""Every 2xx answer in the core's and a connector's OpenAPI document says what it holds.

An answer is typed when its JSON schema names its fields (a model, an object with properties, a
list or union of those) or when it is not JSON (a stream, a file). Routes still untyped are listed
below by owner; the list only shrinks: a new untyped route fails, and so does a listed one that
became typed (remove it from the list).
"""

from __future__ import annotations

import json
import subprocess
import sys
from typing import Any

import pytest

from tests.support.procs import REPO_ROOT, base_env

pytestmark = pytest.mark.unit

API = "/dsx-connect/api/v1"
PROBES = {("GET", p) for p in ("/alive", "/ping", "/healthz", "/readyz")}
KNOWN_UNTYPED: dict[str, set[tuple[str, str]]] = {
    "core": PROBES
    | {("GET", API + p) for p in ("/alive", "/ping", "/healthz", "/readyz")}
    | {
        # auth (dsx_connect/auth/api.py)
        ("POST", API + "/auth/login"),
        ("POST", API + "/auth/logout"),
        ("GET", API + "/auth/session"),
        ("GET", API + "/auth/connectors"),
        ("GET", API + "/auth/connectors/{uuid}"),
        ("POST", API + "/auth/connectors/{uuid}/rotate"),
        ("POST", API + "/auth/connectors/{uuid}/revoke"),
        ("POST", API + "/auth/connectors/{uuid}/reinstate"),
        ("POST", API + "/auth/connectors/{uuid}/reset"),
        ("GET", API + "/auth/enrollment-tokens"),
        ("POST", API + "/auth/enrollment-tokens"),
        ("DELETE", API + "/auth/enrollment-tokens/{token_id}"),
        # service (dsx_connect/api/health.py)
        ("GET", API + "/meta"),
        ("GET", API + "/config"),
        ("GET", API + "/test/dsxa-connection"),
        ("GET", API + "/connection/test"),
        # connectors (dsx_connect/api/connectors.py)
        ("POST", API + "/connectors/register"),
        ("GET", API + "/connectors/list"),
        ("GET", API + "/connectors/estimate/{uuid}"),
        ("GET", API + "/connectors/repo_check/{uuid}"),
        ("GET", API + "/connectors/healthz/{uuid}"),
        ("GET", API + "/connectors/readyz/{uuid}"),
        ("GET", API + "/connectors/config/{uuid}"),
        ("PUT", API + "/connectors/config/{uuid}"),
        ("GET", API + "/connectors/state/{uuid}/{namespace}/{key}"),
        # dead letters (dsx_connect/api/dlq.py)
        ("GET", API + "/dlq/stats"),
        ("GET", API + "/dlq/items"),
        ("POST", API + "/dlq/requeue"),
        ("DELETE", API + "/dlq"),
    },
    # the connector framework (shared/connector/), for every connector
    "filesystem": PROBES
    | {
        ("GET", "/filesystem-connector/healthz"),
        ("GET", "/filesystem-connector/readyz"),
        ("POST", "/filesystem-connector/read_file"),
        ("POST", "/filesystem-connector/full_scan"),
        ("PUT", "/filesystem-connector/item_action"),
        ("GET", "/filesystem-connector/config"),
        ("PUT", "/filesystem-connector/config"),
        ("GET", "/filesystem-connector/"),
        ("GET", "/filesystem-connector/version"),
        ("POST", "/filesystem-connector/webhook/event"),
        ("OPTIONS", "/filesystem-connector/webhook/event"),  # webhook validation handshake
    },
}
APPS = {
    "core": ("dsx_connect.app", {}),
    "filesystem": ("connectors.filesystem.app", {"DSXCONNECTOR_ASSET": str(REPO_ROOT)}),
}


def openapi(module: str, env: dict[str, str]) -> dict[str, Any]:
    code = f"import json, {module} as m; print(json.dumps(m.app.openapi()))"
    done = subprocess.run(
        [sys.executable, "-c", code],
        env=base_env(**env),
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


def is_typed(schema: dict[str, Any], document: dict[str, Any]) -> bool:
    """A schema that names its fields: a model ($ref), an object with properties, a list or union of those."""
    if "$ref" in schema:
        return is_typed(document["components"]["schemas"][schema["$ref"].rsplit("/", 1)[-1]], document)
    if schema.get("properties"):
        return True
    if "items" in schema:
        return is_typed(schema["items"], document)
    variants = schema.get("anyOf") or schema.get("oneOf")
    return bool(variants) and all(is_typed(v, document) for v in variants)


def untyped(document: dict[str, Any]) -> set[tuple[str, str]]:
    found = set()
    for path, operations in document["paths"].items():
        for method, operation in operations.items():
            for code, answer in operation.get("responses", {}).items():
                if not code.startswith("2") or code == "204":
                    continue
                content = answer.get("content") or {}
                json_schema = content.get("application/json", {}).get("schema")
                if not content or (json_schema is not None and not is_typed(json_schema, document)):
                    found.add((method.upper(), path))
    return found


@pytest.mark.parametrize("service", sorted(APPS))
def test_every_2xx_answer_is_typed(service: str) -> None:
    module, env = APPS[service]
    found = untyped(openapi(module, env))
    new = found - KNOWN_UNTYPED[service]
    assert not new, f"2xx answers without a response model (give each a pydantic model): {sorted(new)}"
    typed_now = KNOWN_UNTYPED[service] - found
    assert not typed_now, f"typed now: remove from KNOWN_UNTYPED[{service!r}]: {sorted(typed_now)}"
