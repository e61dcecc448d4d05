"""Access is declared on every route (core and connector), deny by default; the URL check; the settings."""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from fastapi.routing import iter_route_contexts
from fastapi.testclient import TestClient

from connectors.filesystem.connector import FilesystemConnector
from connectors.filesystem.settings import FilesystemSettings
from dsx_connect.auth import urls
from dsx_connect.auth.access import route_rules
from dsx_connect.auth.install import install_security
from dsx_connect.auth.settings import AuthSettings
from dsx_connect.auth.urls import AddressPolicy, address_problem, connector_url_problem
from dsx_connect.settings import Settings
from shared.connector import create_connector_app
from shared.connector.security import verify_core_request
from shared.settings import SettingsError, load_settings
from tests.security.conftest import core_environment, in_process_core
from tests.support.auth import CONNECTOR_AUTH

API = "/dsx-connect/api/v1"

pytestmark = pytest.mark.unit

TOKEN, KEY = "t" * 20, "k" * 20


CONNECTOR_PUBLIC = {  # declared public in the connector framework (shared/connector/routes.py, health)
    "/alive", "/ping", "/healthz", "/readyz", "/filesystem-connector/healthz", "/filesystem-connector/readyz",
    "/filesystem-connector/", "/filesystem-connector/version", "/filesystem-connector/webhook/event",
}  # fmt: skip
CONNECTOR_SIGNED_HOT_PATHS = {"/filesystem-connector/read_file", "/filesystem-connector/read_files"}


@pytest.fixture(scope="module")
def core_app() -> Iterator[FastAPI]:
    with core_environment():
        yield in_process_core()


def test_every_route_of_the_core_declares_an_access_rule(core_app: FastAPI) -> None:
    rows = route_rules(core_app)
    assert len(rows) > 40  # the walk sees the routes of included routers
    undeclared = [(sorted(methods), path) for path, methods, _, rules in rows if not rules - {"gate"}]
    assert undeclared == [], (
        f"routes without an access rule (add one from dsx_connect.auth.access): {undeclared}"
    )
    ungated = [path for path, _, _, rules in rows if "gate" not in rules]
    assert ungated == [], f"routes the default-deny gate does not reach: {ungated}"


@pytest.mark.parametrize(
    ("method", "path", "rule"),
    [
        ("GET", "/healthz", "public"),
        ("GET", f"{API}/config", "public"),  # the batching keys only, unless an operator asks
        ("GET", f"{API}/scan/jobs/{{job_id}}/raw", "public"),  # the pause/cancel flags only
        ("GET", f"{API}/connection/test", "public"),
        ("GET", f"{API}/scan/jobs/{{job_id}}", "operator"),
        ("POST", f"{API}/connectors/register", "enroll"),
        ("POST", f"{API}/scan/request_batch", "owns-scan-requests"),
        ("POST", f"{API}/scan/jobs/{{job_id}}/enqueue_done", "owns-job"),
        ("DELETE", f"{API}/connectors/unregister/{{uuid}}", "connector-self"),
        ("PUT", f"{API}/connectors/state/{{uuid}}/{{namespace}}/{{key}}", "connector-self"),
        ("GET", f"{API}/connectors/list", "operator"),
        ("POST", f"{API}/auth/enrollment-tokens", "operator"),
        ("GET", f"{API}/dlq/items", "operator"),
        ("GET", "/metrics", "operator"),
    ],
)
def test_routes_carry_the_rule_they_need(core_app: FastAPI, method: str, path: str, rule: str) -> None:
    found = {(p, m): rules for p, methods, _, rules in route_rules(core_app) for m in methods}
    assert rule in found[(path, method)]


def test_the_api_docs_are_public_and_load_nothing_from_elsewhere(core_app: FastAPI, tmp_path: Path) -> None:
    """``/docs`` of the core and of a connector, without any credential: the page and the Swagger UI
    files it loads, all from the service itself (FastAPI's own page loaded them from a CDN)."""
    from shared.api_docs import ASSETS

    connector = create_connector_app(
        FilesystemConnector(FilesystemSettings(asset=str(tmp_path), auth=CONNECTOR_AUTH))  # type: ignore[arg-type]
    )

    async def get(app: FastAPI, path: str) -> httpx.Response:
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as http:
            return await http.get(path)

    for app, docs, openapi in (
        (core_app, "/docs", f"{API}/openapi.json"),
        (connector, "/filesystem-connector/docs", "/filesystem-connector/openapi.json"),
    ):
        page = asyncio.run(get(app, docs))
        assert page.status_code == 200 and "http" not in page.text and "<script>" not in page.text
        start = asyncio.run(get(app, f"{docs}/start.js"))
        assert start.status_code == 200 and f'"{openapi}"' in start.text
        for name, media_type in ASSETS.items():
            answer = asyncio.run(get(app, f"{docs}/{name}"))
            assert (answer.status_code, answer.headers["content-type"]) == (200, media_type), name
        moved = asyncio.run(get(app, "/redoc"))  # FastAPI's ReDoc page (from a CDN) is not offered
        assert (moved.status_code, moved.headers["location"]) == (307, docs)


def test_a_route_added_without_a_rule_is_closed_to_all_but_operators() -> None:
    app = FastAPI()
    install_security(app, Settings(auth=AuthSettings(enabled=False)), API)
    app.state.auth_enabled = True  # as with auth on, without needing Redis for the auth layer

    @app.get("/forgotten")
    def forgotten() -> dict[str, str]:
        return {"secret": "x"}

    async def get() -> httpx.Response:
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as http:
            return await http.get("/forgotten")

    answer = asyncio.run(get())
    assert answer.status_code == 401 and "secret" not in answer.text


def test_every_route_of_a_connector_is_signed_or_declared_public(tmp_path: Path) -> None:
    settings = FilesystemSettings(asset=str(tmp_path), auth=CONNECTOR_AUTH)  # type: ignore[arg-type]
    app = create_connector_app(FilesystemConnector(settings))
    seen = set()
    for path, methods, name, _ in route_rules(app):
        seen.add(path)
        if path in CONNECTOR_PUBLIC or path.endswith(("/docs", "/openapi.json")):
            continue
        (context,) = [c for c in iter_route_contexts(app.routes) if c.path == path and c.methods == methods]
        calls = {d.call for d in _walk(context.dependant)}
        assert verify_core_request in calls, (
            f"{sorted(methods)} {path} ({name}) neither signed nor declared public"
        )
    assert seen >= CONNECTOR_SIGNED_HOT_PATHS | (CONNECTOR_PUBLIC - {"/alive", "/ping"})
    assert set(app.hot_paths) == CONNECTOR_SIGNED_HOT_PATHS  # served around FastAPI: each verifies itself


def _walk(dependant: Any) -> list[Any]:
    found, stack = [], list(dependant.dependencies)
    while stack:
        sub = stack.pop()
        found.append(sub)
        stack.extend(sub.dependencies)
    return found


@pytest.mark.parametrize(
    "url",
    ["http://127.0.0.1:8620/filesystem-connector", "http://10.0.0.7/fs", "http://[::1]:8620/fs",
     "http://localhost:8620/filesystem-connector", "http://[::ffff:10.0.0.7]/fs", "http://[2001:db8::7]/fs",
     "http://[fd00::7]/fs"],
)  # fmt: skip
def test_ordinary_connector_urls_are_accepted(url: str) -> None:
    assert connector_url_problem(url) is None


def test_link_local_urls_are_accepted_only_when_allowed() -> None:
    assert connector_url_problem("http://169.254.10.1/fs") is not None
    assert connector_url_problem("http://169.254.10.1/fs", AddressPolicy(allow_link_local=True)) is None
    assert connector_url_problem("http://0.0.0.0/fs", AddressPolicy(allow_link_local=True)) is not None


@pytest.mark.parametrize(
    "address",
    ["169.254.169.254", "fd00:ec2::254", "100.100.100.200", "fe80::1", "64:ff9b::a9fe:a9fe", "64:ff9b:1::a00:1",
     "::ffff:169.254.169.254", "2002:a9fe:a9fe::1", "::a9fe:a9fe", "0.0.0.0", "::", "224.0.0.1", "255.255.255.255",
     "100::1", "4000::1", "240.0.0.1"],
)  # fmt: skip
def test_metadata_link_local_nat64_and_embedded_addresses_are_refused(address: str) -> None:
    assert address_problem(ipaddress.ip_address(address), AddressPolicy()) is not None


def test_the_allow_list_confines_addresses_and_reopens_only_what_it_lists() -> None:
    policy = AddressPolicy(
        allowed_networks=(ipaddress.ip_network("10.0.0.0/8"), ipaddress.ip_network("64:ff9b::/96"))
    )
    assert address_problem(ipaddress.ip_address("10.1.2.3"), policy) is None
    assert address_problem(ipaddress.ip_address("192.168.1.1"), policy) is not None
    assert (
        address_problem(ipaddress.ip_address("64:ff9b::a00:1"), policy) is None
    )  # NAT64 of 10.0.0.1: listed
    assert address_problem(ipaddress.ip_address("64:ff9b::a9fe:a9fe"), policy) is not None  # embeds IMDS


@pytest.mark.parametrize(
    "url", ["http://127.0.0.1:8620/fs?", "http://127.0.0.1/fs?x=1", "http://127.0.0.1/fs#f"]
)
def test_urls_with_a_query_or_a_fragment_are_refused(url: str) -> None:
    assert "query or a fragment" in str(connector_url_problem(url))


def test_a_host_name_is_judged_by_every_address_it_resolves_to(monkeypatch: pytest.MonkeyPatch) -> None:
    names = {
        "fs.corp.test": ["10.0.0.5"],
        "evil.test": ["10.0.0.6", "169.254.169.254"],
        "v6.test": ["fd00:ec2::254"],
    }

    def resolve(host: str, port: int) -> list[str]:
        if host not in names:
            raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")
        return names[host]

    monkeypatch.setattr(urls, "RESOLVER", resolve)
    assert connector_url_problem("http://fs.corp.test:8620/fs") is None
    assert "169.254.169.254" in str(connector_url_problem("http://evil.test/fs"))
    assert "fd00:ec2::254" in str(connector_url_problem("http://v6.test/fs"))
    assert "does not resolve" in str(connector_url_problem("http://nowhere.test/fs"))


def test_tokens_and_keys_read_as_csv_or_json_with_the_1x_single_name(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DSXCONNECT_AUTH__ENROLLMENT_TOKENS", f'["{TOKEN}", "{"u" * 20}"]')
    monkeypatch.setenv("DSXCONNECT_AUTH__ENROLLMENT_TOKEN", "v" * 20)
    monkeypatch.setenv("DSXCONNECT_AUTH__API_KEYS", f" {KEY} , {'w' * 20} ,")
    auth = load_settings(Settings, _env_file=None).auth
    assert [t.get_secret_value() for t in auth.enrollment_tokens] == [TOKEN, "u" * 20, "v" * 20]
    assert [k.get_secret_value() for k in auth.api_keys] == [KEY, "w" * 20]
    assert auth.enabled and auth.missing() == []


def test_a_short_token_stops_the_service_naming_the_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DSXCONNECT_AUTH__API_KEYS", "short")
    with pytest.raises(SettingsError, match="DSXCONNECT_AUTH__API_KEYS"):
        load_settings(Settings, _env_file=None)


def test_with_auth_on_the_api_refuses_to_start_without_tokens_and_keys() -> None:
    settings = Settings(auth=AuthSettings(enrollment_tokens=[TOKEN]))  # type: ignore[list-item]
    with pytest.raises(SettingsError) as stopped:
        install_security(FastAPI(), settings, API)
    assert "DSXCONNECT_AUTH__API_KEYS" in str(stopped.value)
    assert "DSXCONNECT_AUTH__ENROLLMENT_TOKENS" not in str(stopped.value)


def test_turning_auth_off_is_explicit_and_logged(caplog: pytest.LogCaptureFixture) -> None:
    app = FastAPI()
    with caplog.at_level(logging.WARNING):
        install_security(app, Settings(auth=AuthSettings(enabled=False)), API)
    assert "DSXCONNECT_AUTH__ENABLED=false" in caplog.text
    assert [m.cls.__name__ for m in app.user_middleware] == ["BodyLimitMiddleware", "CrossSiteGuard"]  # type: ignore[attr-defined]


def test_with_auth_off_a_browsers_cross_site_write_is_refused() -> None:
    """With auth off there is no session, so nothing checked where a browser's request came from:
    any page an operator opened could post a JSON body (a Blob with no type needs no CORS
    preflight) and clear dead letters or start scans. Reads, and clients that are no browser, pass."""
    app = FastAPI()
    install_security(app, Settings(auth=AuthSettings(enabled=False)), API)
    done: list[str] = []

    @app.post(f"{API}/dlq/clear")
    def clear() -> dict[str, str]:
        done.append("cleared")
        return {"status": "success"}

    @app.get(f"{API}/jobs")
    def jobs() -> list[str]:
        return []

    with TestClient(app) as client:
        for headers in (
            {"Sec-Fetch-Site": "cross-site"},
            {"Sec-Fetch-Site": "same-site", "Origin": "http://grafana.example"},
            {"Origin": "http://evil.example"},  # an older browser: no Sec-Fetch-Site
            {"Origin": "null"},  # a sandboxed frame, a data: URL
        ):
            refused = client.post(f"{API}/dlq/clear", content=b'{"all": true}', headers=headers)
            assert (refused.status_code, refused.json()["error"]) == (403, "cross_site"), headers
        assert done == []
        assert client.get(f"{API}/jobs", headers={"Sec-Fetch-Site": "cross-site"}).status_code == 200
        for headers in ({}, {"Sec-Fetch-Site": "same-origin"}, {"Origin": "http://testserver"}):
            assert client.post(f"{API}/dlq/clear", headers=headers).status_code == 200, headers
    assert done == ["cleared"] * 3


def test_the_redacted_config_shows_no_secret() -> None:
    settings = Settings(auth=AuthSettings(enrollment_tokens=[TOKEN], api_keys=[KEY], server_key="s" * 32))  # type: ignore[list-item, arg-type]
    shown = str(settings.redacted())
    assert TOKEN not in shown and KEY not in shown and "s" * 32 not in shown
