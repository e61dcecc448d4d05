"""The pieces of the gate on their own: the route table, the URL check, the settings, the start-up rule."""

from __future__ import annotations

import logging

import pytest
from fastapi import FastAPI

from dsx_connect.auth.install import install_security
from dsx_connect.auth.policy import API, match_rule
from dsx_connect.auth.settings import AuthSettings
from dsx_connect.auth.urls import connector_url_problem
from dsx_connect.settings import Settings
from shared.settings import SettingsError, load_settings

pytestmark = pytest.mark.unit

TOKEN, KEY = "t" * 20, "k" * 20


@pytest.mark.parametrize(
    ("method", "path", "access"),
    [
        ("GET", "/healthz", "public"),
        ("HEAD", f"{API}/readyz", "public"),
        ("GET", "/", "public"),
        ("GET", "/js/main.js", "public"),
        ("GET", f"{API}/openapi.json", "public"),
        ("GET", f"{API}/config", "limited"),
        ("GET", f"{API}/scan/jobs/j-1/raw", "limited"),
        ("GET", f"{API}/scan/jobs/j-1", "operator"),
        ("POST", f"{API}/connectors/register", "enroll"),
        ("POST", f"{API}/scan/request_batch", "connector"),
        ("DELETE", f"{API}/connectors/unregister/u-1", "connector"),
        ("GET", f"{API}/connectors/list", "operator"),
        ("GET", f"{API}/some/route/added/later", "operator"),
        ("GET", API, "operator"),
        ("GET", "/metrics", "operator"),
        ("POST", f"{API}/config", "operator"),  # only GET is limited
    ],
)
def test_every_path_gets_its_rule_and_unknown_api_paths_are_closed(
    method: str, path: str, access: str
) -> None:
    assert match_rule(method, path)[0].access == access


def test_path_parameters_come_with_the_rule() -> None:
    rule, params = match_rule("PUT", f"{API}/connectors/state/u-1/graph/delta")
    assert rule.owner == "path" and params == {"uuid": "u-1", "namespace": "graph", "key": "delta"}


@pytest.mark.parametrize(
    "url",
    ["http://127.0.0.1:8620/filesystem-connector", "https://fs.corp.example:8620/fs", "http://10.0.0.7/fs",
     "http://[::1]:8620/fs", "http://filesystem-connector:8620/filesystem-connector"],
)  # fmt: skip
def test_ordinary_connector_urls_are_accepted(url: str) -> None:
    assert connector_url_problem(url) is None


def test_link_local_urls_are_accepted_only_when_allowed() -> None:
    assert connector_url_problem("http://169.254.10.1/fs") is not None
    assert connector_url_problem("http://169.254.10.1/fs", allow_link_local=True) is None
    assert connector_url_problem("http://0.0.0.0/fs", allow_link_local=True) is not None


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
    assert [m.cls.__name__ for m in app.user_middleware] == ["BodyLimitMiddleware"]  # type: ignore[attr-defined]


def test_the_redacted_config_shows_no_secret() -> None:
    settings = Settings(auth=AuthSettings(enrollment_tokens=[TOKEN], api_keys=[KEY], server_key="s" * 32))  # type: ignore[list-item, arg-type]
    shown = str(settings.redacted())
    assert TOKEN not in shown and KEY not in shown and "s" * 32 not in shown
