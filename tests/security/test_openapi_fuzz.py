"""Schemathesis against the live OpenAPI of the core and of the filesystem connector, auth on, with
credentials supplied (an operator key and an enrollment token for the core, the core's DSX-HMAC for
the connector): whatever the generated input, no answer is a 500 or carries a stack trace. And
with no credentials at all: still no 5xx, and every protected operation answers 401 or 403.

502/503 are the core's documented gateway answers (a connector or the scanner unreachable) and pass
when they are the JSON error shape. Bounded: a few examples per operation, derandomized for CI;
server-sent event streams are left out (an endless body is no answer to check).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import requests
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from schemathesis.specs.openapi.checks import response_schema_conformance

from shared.hmac_auth import Signer
from tests.support.auth import CONNECTOR_KEY_ID, CONNECTOR_SECRET, OPERATOR_HEADERS
from tests.support.procs import ServiceProcess, base_env, free_port, uvicorn_argv

pytestmark = [pytest.mark.integration, pytest.mark.timeout(240)]

FUZZ = settings(
    max_examples=6,
    deadline=None,
    derandomize=True,
    phases=[Phase.explicit, Phase.generate],
    suppress_health_check=list(HealthCheck),
)


class SignedRequests(requests.auth.AuthBase):
    """DSX-HMAC on a ``requests`` call (what schemathesis sends), as the core signs its calls."""

    def __init__(self, signer: Signer) -> None:
        self.signer = signer

    def __call__(self, request: requests.PreparedRequest) -> requests.PreparedRequest:
        body = request.body or b""
        body = body.encode() if isinstance(body, str) else body
        assert isinstance(body, bytes)
        request.headers["Authorization"] = self.signer.authorization(
            str(request.method), request.path_url, body
        )
        return request


def no_server_error(response: requests.Response) -> None:
    text = response.content.decode("utf-8", "replace")  # binary answers too (read_file, read_files)
    where = f"{response.request.method} {response.request.url} -> {response.status_code}: {text[:300]}"
    assert "Traceback" not in text, where
    if response.status_code >= 500:
        assert response.status_code in (502, 503), where
        assert response.json().get("status") == "error", where


@pytest.fixture(scope="module")
def core_url(redis_url: str, logs_dir: Path) -> Iterator[str]:
    db_url = redis_url.rsplit("/", 1)[0] + "/12"
    import redis

    redis.Redis.from_url(db_url).flushdb()
    dsxa_port, core_port = free_port(), free_port()
    dsxa = ServiceProcess(
        f"fuzz-dsxa-{dsxa_port}", uvicorn_argv("dsxa_lite.app:app", dsxa_port), base_env(), logs_dir
    )
    env = base_env(
        DSXCONNECT_REDIS_URL=db_url,
        DSXCONNECT_SCANNER__SCAN_BINARY_URL=f"http://127.0.0.1:{dsxa_port}/scan/binary/v2",
        DSXCONNECT_CONNECTORS__REQUEST_TIMEOUT_S="1",
    )
    core = ServiceProcess(
        f"fuzz-core-{core_port}", uvicorn_argv("dsx_connect.app:app", core_port), env, logs_dir
    )
    try:
        dsxa.start()
        core.start()
        dsxa.wait_healthy(f"http://127.0.0.1:{dsxa_port}/healthz", timeout=60)
        core.wait_healthy(f"http://127.0.0.1:{core_port}/healthz", timeout=60)
        yield f"http://127.0.0.1:{core_port}"
    finally:
        core.stop()
        dsxa.stop()
        redis.Redis.from_url(db_url).flushdb()


@pytest.fixture(scope="module")
def connector_url(tmp_path_factory: pytest.TempPathFactory, logs_dir: Path) -> Iterator[str]:
    asset = tmp_path_factory.mktemp("fuzz-asset")
    (asset / "a.txt").write_bytes(b"alpha")
    port = free_port()
    env = base_env(
        DSXCONNECTOR_ASSET=str(asset),
        DSXCONNECTOR_DSX_CONNECT_URL=f"http://127.0.0.1:{free_port()}",  # no core: it only serves
        DSXCONNECTOR_CONNECTOR_URL=f"http://127.0.0.1:{port}/filesystem-connector",
        DSXCONNECTOR_AUTH__HMAC_KEY_ID=CONNECTOR_KEY_ID,
        DSXCONNECTOR_AUTH__HMAC_SECRET=CONNECTOR_SECRET,
    )
    proc = ServiceProcess(
        f"fuzz-fs-{port}", uvicorn_argv("connectors.filesystem.app:app", port), env, logs_dir
    )
    try:
        proc.start()
        proc.wait_healthy(f"http://127.0.0.1:{port}/healthz", timeout=60)
        yield f"http://127.0.0.1:{port}"
    finally:
        proc.stop()


API = "/dsx-connect/api/v1"
CORE_PUBLIC = {
    *(f"{prefix}{probe}" for prefix in ("", API) for probe in ("/alive", "/ping", "/healthz", "/readyz")),
    f"{API}/meta", f"{API}/version", f"{API}/config", f"{API}/connection/test", f"{API}/scan/jobs/{{job_id}}/raw",
    f"{API}/auth/login", f"{API}/auth/logout", f"{API}/auth/session",
}  # fmt: skip
CORE_ENROLL = {f"{API}/connectors/register"}  # refused (401) unless the body is malformed (422)
CONNECTOR_PUBLIC = {
    "/alive", "/ping", "/healthz", "/readyz", "/filesystem-connector/healthz", "/filesystem-connector/readyz",
    "/filesystem-connector/", "/filesystem-connector/version", "/filesystem-connector/webhook/event",
}  # fmt: skip


def refused_unless_public(public: set[str], enroll: set[str]) -> Any:
    """A check for anonymous calls: no 5xx; a protected operation answers 401/403 and nothing else."""

    def check(response: requests.Response, path: str) -> None:
        no_server_error(response)
        where = f"{response.request.method} {path} -> {response.status_code}: {response.text[:200]}"
        if path in enroll:
            assert response.status_code in (401, 403, 422), where
        elif path not in public:
            assert response.status_code in (401, 403), where

    return check


def conforms(response: Any, case: schemathesis.Case) -> None:
    """A 2xx JSON answer is what its route's response model says (tests/dsx_connect/api/test_openapi_typed.py
    makes every route declare one)."""
    kind = response.headers.get("content-type") or [""]  # schemathesis keeps each header's values
    if not (200 <= response.status_code < 300 and str(kind[0]).startswith("application/json")):
        return
    try:
        case.validate_response(response, checks=[response_schema_conformance])
    except BaseExceptionGroup as exc:  # schemathesis's FailureGroup
        raise AssertionError(f"{response.status_code} answer does not match its model: {exc}") from None


def fuzz(schema_url: str, base_url: str, check: Any = None, **call: Any) -> None:
    """Every operation of the schema (SSE streams left out), a few generated cases each; all failures
    are reported together, by operation. Without ``check``: no 5xx, and 2xx answers match their model."""
    document = httpx.get(schema_url, timeout=10).json()
    schema = schemathesis.openapi.from_dict(document).exclude(path_regex="/subscribe/")
    failures: list[str] = []
    operations = 0
    for result in schema.get_all_operations():
        operation = result.ok()
        operations += 1

        @FUZZ
        @given(case=operation.as_strategy())
        def run(case: schemathesis.Case) -> None:
            response = case.call(base_url=base_url, timeout=15, **call)
            if check is None:
                no_server_error(response)
                conforms(response, case)
            else:
                check(response, case.operation.path)

        try:
            run()
        except AssertionError as exc:
            failures.append(f"{operation.label}: {exc}")
    assert operations > 5, "the OpenAPI document lists almost nothing"
    assert not failures, "\n".join(failures)


def test_the_core_never_answers_a_server_error_and_answers_as_documented(core_url: str) -> None:
    fuzz(f"{core_url}/dsx-connect/api/v1/openapi.json", core_url, headers=OPERATOR_HEADERS)


def test_the_filesystem_connector_never_answers_a_server_error_and_answers_as_documented(
    connector_url: str,
) -> None:
    signed = SignedRequests(Signer(CONNECTOR_KEY_ID, CONNECTOR_SECRET))
    fuzz(f"{connector_url}/filesystem-connector/openapi.json", connector_url, auth=signed)


def test_without_credentials_the_core_refuses_every_protected_operation(core_url: str) -> None:
    fuzz(f"{core_url}{API}/openapi.json", core_url, check=refused_unless_public(CORE_PUBLIC, CORE_ENROLL))


def test_without_credentials_the_connector_refuses_every_protected_operation(connector_url: str) -> None:
    check = refused_unless_public(CONNECTOR_PUBLIC, set())
    fuzz(f"{connector_url}/filesystem-connector/openapi.json", connector_url, check=check)
