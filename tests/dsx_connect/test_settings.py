"""Core settings: defaults, aliases of the guide and of 1.x, and bad values naming the variable."""

from __future__ import annotations

from typing import Any

import pytest

from dsx_connect.settings import Settings, get_settings
from shared.settings import SettingsError, load_settings

pytestmark = pytest.mark.unit


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    import os

    for name in list(os.environ):
        if name.startswith("DSXCONNECT_") or name in (
            "APP_ENV",
            "REDIS_URL",
            "DSXA_SCANNER_URL",
            "DSX_API_KEY",
            "USE_TLS",
        ):
            monkeypatch.delenv(name)
    get_settings.cache_clear()


def test_defaults_point_at_local_services() -> None:
    settings = load_settings(Settings)
    assert settings.redis_url == "redis://127.0.0.1:6379/0"
    assert settings.scanner.scan_binary_url == "http://127.0.0.1:5000/scan/binary/v2"
    assert settings.workers.scan_request_batch_enabled is True


def test_nested_variables(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DSXCONNECT_SCANNER__SCAN_BINARY_URL", "https://dsxa.example:443/scan/binary/v2")
    monkeypatch.setenv("DSXCONNECT_RESULTS_DB__RETAIN", "500")
    settings = load_settings(Settings)
    assert settings.scanner.scan_binary_url.startswith("https://dsxa.example")
    assert settings.results_db.retain == 500


def test_short_aliases_of_the_guide(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("REDIS_URL", "redis://cache:6380/1")
    monkeypatch.setenv("DSXA_SCANNER_URL", "http://dsxa:5000")
    monkeypatch.setenv("DSX_API_KEY", "tok")
    settings = load_settings(Settings)
    assert settings.redis_url == "redis://cache:6380/1"
    assert settings.scanner.scan_binary_url == "http://dsxa:5000/scan/binary/v2"
    assert settings.scanner.auth_token is not None and settings.scanner.auth_token.get_secret_value() == "tok"


def test_1x_scanner_names(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DSXCONNECT_SCANNER__TIMEOUT_SECONDS", "33")
    monkeypatch.setenv("DSXCONNECT_SCANNER__BASE_URL", "http://old-dsxa:5000/")
    settings = load_settings(Settings)
    assert settings.scanner.timeout_s == 33
    assert settings.scanner.scan_binary_url == "http://old-dsxa:5000/scan/binary/v2"


def test_bad_value_names_the_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DSXCONNECT_RESULTS_DB__RETAIN", "lots")
    with pytest.raises(SettingsError) as info:
        load_settings(Settings)
    assert "DSXCONNECT_RESULTS_DB__RETAIN" in str(info.value)


def test_bad_redis_url_names_the_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DSXCONNECT_REDIS_URL", "http://not-redis")
    with pytest.raises(SettingsError, match="DSXCONNECT_REDIS_URL"):
        load_settings(Settings)


def test_tls_without_files_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DSXCONNECT_USE_TLS", "true")
    with pytest.raises(SettingsError, match="DSXCONNECT_TLS_CERTFILE"):
        load_settings(Settings)


def test_config_view_redacts_secrets(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DSXCONNECT_SCANNER__AUTH_TOKEN", "very-secret")
    monkeypatch.setenv("DSXCONNECT_REDIS_URL", "redis://user:pw@cache:6379/0")
    shown = str(load_settings(Settings).redacted())
    assert "very-secret" not in shown and "pw@" not in shown
    assert "cache:6379" in shown


@pytest.mark.unit
def test_a_visibility_timeout_a_task_could_outlast_stops_the_core_naming_the_variables() -> None:
    from dsx_connect.settings import Settings

    with pytest.raises(ValueError, match=r"DSXCONNECT_WORKERS__VISIBILITY_TIMEOUT_S.*ITEM_DEADLINE_S"):
        Settings(workers={"visibility_timeout_s": 300})  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="DSXCONNECT_WORKERS__CONNECTOR_TIMEOUT_S"):
        Settings(workers={"connector_timeout_s": 300})  # type: ignore[arg-type]
    with pytest.raises(ValueError, match=r"DSXCONNECT_JOBS__REDISPATCH_AFTER_S.*VISIBILITY_TIMEOUT_S"):
        Settings(jobs={"redispatch_after_s": 60})  # type: ignore[arg-type]
    workers = Settings().workers
    # a task waits at most its countdown, starts no item past start_deadline_s, finishes those it
    # started within item_deadline_s, and is killed at its time limit: all before redelivery
    assert workers.start_deadline_s + workers.item_deadline_s < workers.task_time_limit_s
    assert workers.longest_countdown_s + workers.task_time_limit_s < workers.visibility_timeout_s
    tuning: dict[str, Any] = {
        "workers": {"visibility_timeout_s": 30, "item_deadline_s": 8, "connector_timeout_s": 3,
                    "retry_backoff_max_s": 1, "breaker_open_max_s": 2},
        "jobs": {"redispatch_after_s": 30},
    }  # fmt: skip
    short = Settings(**tuning)
    assert short.workers.start_deadline_s >= short.workers.item_deadline_s
