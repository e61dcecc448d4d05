"""Every 2xx answer in the core's and a connector's OpenAPI document says what it holds.

An answer is typed when its JSON schema names its fields (a model, an object with properties, a
list or union of those), when it is not JSON (a stream, a file: declare its media type in
``responses={200: {"content": {...}}}``), or when it has no body and documents the headers it
answers with (a webhook handshake). There is no allow-list: a new route without a response model
fails here, in the core and in every connector.
"""

from __future__ import annotations

import json
import subprocess
import sys
from typing import Any

import pytest

from tests.support.procs import REPO_ROOT, base_env

pytestmark = pytest.mark.unit

# every connector, with the least configuration its settings accept (nothing is contacted)
APPS: dict[str, tuple[str, dict[str, str]]] = {
    "core": ("dsx_connect.app", {}),
    "filesystem": ("connectors.filesystem.app", {"DSXCONNECTOR_ASSET": str(REPO_ROOT)}),
    "aws_s3": ("connectors.aws_s3.app", {"DSXCONNECTOR_ASSET": "bucket"}),
    "azure_blob_storage": (
        "connectors.azure_blob_storage.app",
        {"DSXCONNECTOR_ASSET": "container", "DSXCONNECTOR_AZURE_ACCOUNT_NAME": "account"},
    ),
    "google_cloud_storage": (
        "connectors.google_cloud_storage.app",
        {"DSXCONNECTOR_ASSET": "bucket", "DSXCONNECTOR_GCS_ANONYMOUS": "true"},
    ),
    **{
        package: (
            f"connectors.{package}.app",
            {
                "DSXCONNECTOR_SP_TENANT_ID": "tenant",
                "DSXCONNECTOR_SP_CLIENT_ID": "client",
                "DSXCONNECTOR_SP_CLIENT_SECRET": "secret",
                "DSXCONNECTOR_SP_SITE_URL": "https://contoso.sharepoint.com/sites/x",
                "DSXCONNECTOR_OD_USER": "user@contoso.com",
            },
        )
        for package in ("sharepoint", "onedrive")
    },
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
                if not content and answer.get("headers"):  # no body: the answer is its headers
                    continue
                json_schema = content.get("application/json", {}).get("schema")
                if not content or (json_schema is not None and not is_typed(json_schema, document)):
                    found.add((method.upper(), path))
    return found


@pytest.mark.parametrize("service", sorted(APPS))
def test_every_2xx_answer_is_typed(service: str) -> None:
    module, env = APPS[service]
    document = openapi(module, env)
    assert len(document["paths"]) > 5, "the document lists the routes"
    found = untyped(document)
    assert not found, f"2xx answers without a response model (give each a pydantic model): {sorted(found)}"
