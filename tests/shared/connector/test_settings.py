"""Settings shared by every connector (``DSXCONNECTOR_*``)."""

from __future__ import annotations

import pytest

from shared.connector.settings import ConnectorSettings
from shared.models import ItemActionType
from shared.settings import SettingsError, load_settings

pytestmark = pytest.mark.unit


class DemoSettings(ConnectorSettings):
    name: str = "demo-connector"
    port: int = 8690
    supported_actions = frozenset({ItemActionType.NOTHING, ItemActionType.DELETE})


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    import os

    for key in list(os.environ):
        if key.startswith(("DSXCONNECTOR_", "DSXCONNECT_")):
            monkeypatch.delenv(key)


def test_identity_is_derived_from_name_port_and_asset(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DSXCONNECTOR_ASSET", "bucket-a")
    first, again = DemoSettings(), DemoSettings()
    assert first.connector_url == "http://127.0.0.1:8690/demo-connector"
    assert first.route_prefix == "/demo-connector"
    assert first.uuid == again.uuid  # a restart registers as the same connector
    monkeypatch.setenv("DSXCONNECTOR_ASSET", "bucket-b")
    assert DemoSettings().uuid != first.uuid
    monkeypatch.setenv("DSXCONNECTOR_UUID", "fixed-id")
    assert DemoSettings().uuid == "fixed-id"


def test_urls_are_normalised(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DSXCONNECTOR_CONNECTOR_URL", "http://fs:8620/")  # 1.x style: no route prefix
    monkeypatch.setenv("DSXCONNECTOR_DSX_CONNECT_URL", "https://core:8586/dsx-connect/api/v1/")
    s = DemoSettings()
    assert s.connector_url == "http://fs:8620/demo-connector"
    assert s.dsx_connect_url == "https://core:8586"
    monkeypatch.setenv("DSXCONNECTOR_CONNECTOR_URL", "https://edge/x/demo-connector")
    assert DemoSettings().connector_url == "https://edge/x/demo-connector"


def test_one_x_aliases_and_nested_auth_are_accepted(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DSXCONNECT_ENROLLMENT_TOKEN", "enroll-1")
    monkeypatch.setenv("DSXCONNECTOR_AUTH__ENABLED", "true")
    monkeypatch.setenv("DSXCONNECTOR_AUTH__HMAC_KEY_ID", "key-1")
    monkeypatch.setenv("DSXCONNECTOR_AUTH__HMAC_SECRET", "shh")
    s = DemoSettings()
    assert s.enrollment_token is not None and s.enrollment_token.get_secret_value() == "enroll-1"
    assert s.auth.enabled and s.auth.hmac_key_id == "key-1"
    monkeypatch.setenv("DSXCONNECTOR_ENROLLMENT_TOKEN", "enroll-2")
    assert DemoSettings().enrollment_token.get_secret_value() == "enroll-2"  # type: ignore[union-attr]


def test_redacted_settings_show_no_secret(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DSXCONNECTOR_ENROLLMENT_TOKEN", "enroll-secret")
    monkeypatch.setenv("DSXCONNECTOR_AUTH__HMAC_SECRET", "hmac-secret")
    shown = DemoSettings().redacted()
    assert "enroll-secret" not in str(shown) and "hmac-secret" not in str(shown)
    assert shown["enrollment_token"] == "***" and shown["auth"]["hmac_secret"] == "***"
    assert shown["name"] == "demo-connector"


@pytest.mark.parametrize(
    ("variable", "value"),
    [
        ("DSXCONNECTOR_HEARTBEAT_INTERVAL_S", "-1"),
        ("DSXCONNECTOR_ITEM_ACTION", "shred"),
        ("DSXCONNECTOR_ITEM_ACTION", "move"),  # not in DemoSettings.supported_actions
        ("DSXCONNECTOR_DSX_CONNECT_URL", "core:8586"),
        ("DSXCONNECTOR_FILTER", "-"),
        ("DSXCONNECTOR_CA_BUNDLE", "/nonexistent/ca.pem"),
        ("DSXCONNECTOR_MONITOR", "maybe"),
        ("DSXCONNECTOR_USE_TLS", "true"),  # without a certificate
        ("DSXCONNECTOR_UUID", "b:evil"),  # the core refuses such a uuid (a colon joins its keys)
    ],
)
def test_a_bad_value_stops_the_service_naming_the_variable(
    monkeypatch: pytest.MonkeyPatch, variable: str, value: str
) -> None:
    monkeypatch.setenv(variable, value)
    with pytest.raises(SettingsError) as raised:
        load_settings(DemoSettings)
    message = str(raised.value)
    assert variable in message or (
        variable == "DSXCONNECTOR_USE_TLS" and "DSXCONNECTOR_TLS_CERTFILE" in message
    )


def test_updated_validates_and_keeps_identity(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DSXCONNECTOR_ENROLLMENT_TOKEN", "keep-me")
    s = DemoSettings()
    changed = s.updated({"filter": "*.pdf", "item_action": "delete"})
    assert changed.filter == "*.pdf" and changed.item_action == ItemActionType.DELETE
    assert changed.uuid == s.uuid and changed.connector_url == s.connector_url
    assert changed.enrollment_token.get_secret_value() == "keep-me"  # type: ignore[union-attr]
    with pytest.raises(ValueError, match="item_action"):
        s.updated({"item_action": "tag"})
