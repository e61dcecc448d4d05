"""The feed's settings: variable names, the 1.x syslog switch, required values named at start, redaction."""

from __future__ import annotations

import json

import pytest

from dsx_connect.notifications.runner import delivery_settings
from dsx_connect.settings import Settings
from dsx_connect.superlog.config import RedactSettings
from dsx_connect.superlog.events import Redactor, legacy_object
from dsx_connect.superlog.runner import wanted_in_worker
from shared.settings import SettingsError, load_settings
from tests.dsx_connect.superlog.conftest import make_settings, scan_event

pytestmark = pytest.mark.unit


def load(monkeypatch: pytest.MonkeyPatch, **env: str) -> Settings:
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    return load_settings(Settings, _env_file=None)


def test_the_feed_is_off_by_default(monkeypatch: pytest.MonkeyPatch) -> None:
    settings = load(monkeypatch)
    assert settings.superlog.active == [] and settings.superlog.enabled is False


def test_a_1x_syslog_server_alone_turns_the_syslog_feed_on(monkeypatch: pytest.MonkeyPatch) -> None:
    settings = load(
        monkeypatch,
        DSXCONNECT_SYSLOG__SYSLOG_SERVER_URL="syslog",
        DSXCONNECT_SYSLOG__SYSLOG_SERVER_PORT="514",
        DSXCONNECT_SYSLOG__TRANSPORT="udp",
    )
    assert settings.superlog.active == ["syslog"]
    assert (settings.syslog.host, settings.syslog.effective_port, settings.syslog.transport) == (
        "syslog",
        514,
        "udp",
    )
    assert settings.syslog.format == "legacy"
    off = load(monkeypatch, DSXCONNECT_SUPERLOG__ENABLED="false")
    assert off.superlog.active == []
    blank = load(monkeypatch, DSXCONNECT_SUPERLOG__ENABLED="", DSXCONNECT_SUPERLOG__DESTINATIONS="")
    assert blank.superlog.active == ["syslog"]  # blank variables of an env file mean unset


def test_every_destination_from_its_variables(monkeypatch: pytest.MonkeyPatch) -> None:
    settings = load(
        monkeypatch,
        DSXCONNECT_SUPERLOG__ENABLED="true",
        DSXCONNECT_SUPERLOG__DESTINATIONS="syslog, splunk,cloudwatch,sentinel",
        DSXCONNECT_SYSLOG__HOST="siem.example",
        DSXCONNECT_SYSLOG__TRANSPORT="tls",
        DSXCONNECT_SYSLOG__FORMAT="rfc5424",
        DSXCONNECT_SYSLOG__FACILITY="local4",
        DSXCONNECT_SUPERLOG__SPLUNK__HEC_URL="https://splunk.example:8088",
        DSXCONNECT_SUPERLOG__SPLUNK__TOKEN="hec-secret",
        DSXCONNECT_SUPERLOG__SPLUNK__INDEX="security",
        DSXCONNECT_SUPERLOG__SPLUNK__SOURCETYPE="dsx:scan",
        DSXCONNECT_SUPERLOG__CLOUDWATCH__LOG_GROUP="/dsx/scan-results",
        DSXCONNECT_SUPERLOG__CLOUDWATCH__LOG_STREAM="core-1",
        DSXCONNECT_SUPERLOG__CLOUDWATCH__REGION="eu-west-1",
        DSXCONNECT_SUPERLOG__CLOUDWATCH__ENDPOINT_URL="http://127.0.0.1:5000",
        DSXCONNECT_SUPERLOG__CLOUDWATCH__CREATE="true",
        DSXCONNECT_SUPERLOG__SENTINEL__DCE_URL="https://dce.eastus-1.ingest.monitor.azure.com",
        DSXCONNECT_SUPERLOG__SENTINEL__DCR_IMMUTABLE_ID="dcr-0123",
        DSXCONNECT_SUPERLOG__SENTINEL__STREAM_NAME="Custom-Dsx",
        DSXCONNECT_SUPERLOG__SENTINEL__TENANT_ID="tenant",
        DSXCONNECT_SUPERLOG__SENTINEL__CLIENT_ID="client",
        DSXCONNECT_SUPERLOG__SENTINEL__CLIENT_SECRET="sentinel-secret",
        DSXCONNECT_SUPERLOG__SENTINEL__AUTHORITY_HOST="https://login.microsoftonline.us",
        DSXCONNECT_SUPERLOG__BUFFER_MAX_EVENTS="5000",
        DSXCONNECT_SUPERLOG__FORWARDER="off",
        DSXCONNECT_SUPERLOG__REDACT__LOCATION="hash",
        DSXCONNECT_SUPERLOG__REDACT__METAINFO="drop",
        DSXCONNECT_SUPERLOG__REDACT__SALT="pepper",
    )
    feed = settings.superlog
    assert feed.active == ["syslog", "splunk", "cloudwatch", "sentinel"]
    assert (settings.syslog.effective_port, settings.syslog.facility, settings.syslog.format) == (
        6514,
        20,
        "rfc5424",
    )
    assert (feed.splunk.index, feed.splunk.sourcetype) == ("security", "dsx:scan")
    assert (feed.cloudwatch.log_stream, feed.cloudwatch.region, feed.cloudwatch.create) == (
        "core-1",
        "eu-west-1",
        True,
    )
    assert (feed.sentinel.stream_name, feed.sentinel.authority_host) == (
        "Custom-Dsx",
        "https://login.microsoftonline.us",
    )
    assert (feed.buffer_max_events, feed.forwarder, feed.redact.location, feed.redact.metainfo) == (
        5000,
        "off",
        "hash",
        "drop",
    )
    shown = json.dumps(settings.redacted())
    for secret in ("hec-secret", "sentinel-secret", "pepper"):
        assert secret not in shown  # /config shows the destinations, never their secrets
    assert settings.redacted()["superlog"]["splunk"]["hec_url"] == "https://splunk.example:8088"


def test_a_destination_missing_a_value_stops_the_service_naming_the_variables(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    with pytest.raises(SettingsError) as error:
        load(
            monkeypatch,
            DSXCONNECT_SUPERLOG__ENABLED="true",
            DSXCONNECT_SUPERLOG__DESTINATIONS="splunk,sentinel",
            DSXCONNECT_SUPERLOG__SPLUNK__HEC_URL="https://splunk:8088",
        )
    message = str(error.value)
    assert (
        "DSXCONNECT_SUPERLOG__SPLUNK__TOKEN" in message
        and "DSXCONNECT_SUPERLOG__SENTINEL__DCE_URL" in message
    )
    with pytest.raises(SettingsError, match="DESTINATIONS"):
        load(monkeypatch, DSXCONNECT_SUPERLOG__DESTINATIONS="syslog,kafka")
    with pytest.raises(SettingsError, match="DSXCONNECT_SUPERLOG__REDACT__SALT"):
        load(
            monkeypatch,
            DSXCONNECT_SUPERLOG__DESTINATIONS="syslog",
            DSXCONNECT_SUPERLOG__REDACT__LOCATION="hash",
        )


def test_the_forwarder_runs_in_the_notification_worker_unless_told_otherwise() -> None:
    on = make_settings(superlog={"enabled": True})
    assert wanted_in_worker(on, ["scan_result_notification_queue"])
    assert not wanted_in_worker(on, ["scan_request_queue"])
    everywhere = make_settings(superlog={"enabled": True, "forwarder": "on"})
    assert wanted_in_worker(everywhere, ["scan_request_queue"])
    nowhere = make_settings(superlog={"enabled": True, "forwarder": "off"})
    assert not wanted_in_worker(nowhere, ["scan_result_notification_queue"])
    assert not wanted_in_worker(make_settings(), ["scan_result_notification_queue"])


def test_redaction_hashes_with_the_salt_or_drops() -> None:
    event = json.loads(scan_event(1).model_dump_json())
    hashed = Redactor(RedactSettings(location="hash", salt="pepper"))(event)  # type: ignore[arg-type]
    assert hashed["location"].startswith("sha256:") and len(hashed["location"]) == 7 + 64
    assert hashed["location"] == Redactor(RedactSettings(location="hash", salt="pepper"))(event)["location"]  # type: ignore[arg-type]
    assert hashed["location"] != Redactor(RedactSettings(location="hash", salt="salt"))(event)["location"]  # type: ignore[arg-type]
    assert (
        hashed["metainfo"] == "file-1.txt" and event["location"] == "docs/file-1.txt"
    )  # the input is untouched
    dropped = Redactor(RedactSettings(location="drop", metainfo="drop"))(event)
    assert "location" not in dropped and "metainfo" not in dropped
    legacy = legacy_object(dropped)
    assert "location" not in legacy["scan_request"] and "location" not in legacy


SPLUNK_ENV = {
    "DSXCONNECT_SUPERLOG__ENABLED": "true",
    "DSXCONNECT_SUPERLOG__DESTINATIONS": "splunk",
    "DSXCONNECT_SUPERLOG__SPLUNK__HEC_URL": "https://splunk.example:8088",
    "DSXCONNECT_SUPERLOG__SPLUNK__TOKEN": "hec-secret",
}


def test_a_lock_ttl_not_above_twice_a_destinations_timeout_stops_the_service(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A call may last its timeout: a lock that expires under it lets a second forwarder in."""
    with pytest.raises(SettingsError) as error:
        load(
            monkeypatch,
            **SPLUNK_ENV,
            DSXCONNECT_SUPERLOG__SPLUNK__TIMEOUT_S="60",
            DSXCONNECT_SUPERLOG__LOCK_TTL_S="5",
        )
    message = str(error.value)
    assert (
        "DSXCONNECT_SUPERLOG__LOCK_TTL_S" in message and "DSXCONNECT_SUPERLOG__SPLUNK__TIMEOUT_S" in message
    )


def test_a_lock_ttl_not_above_twice_the_syslog_timeout_stops_the_service(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    with pytest.raises(SettingsError) as error:
        load(
            monkeypatch,
            DSXCONNECT_SYSLOG__HOST="siem.example",
            DSXCONNECT_SYSLOG__TIMEOUT_S="20",
            DSXCONNECT_SUPERLOG__LOCK_TTL_S="30",
        )
    message = str(error.value)
    assert "DSXCONNECT_SUPERLOG__LOCK_TTL_S" in message and "DSXCONNECT_SYSLOG__TIMEOUT_S" in message


def test_an_unset_lock_ttl_grows_with_the_longest_timeout(monkeypatch: pytest.MonkeyPatch) -> None:
    settings = load(monkeypatch, **SPLUNK_ENV, DSXCONNECT_SUPERLOG__SPLUNK__TIMEOUT_S="20")
    assert settings.superlog.lock_ttl_s > 2 * 20
    assert load(monkeypatch, DSXCONNECT_SUPERLOG__ENABLED="false").superlog.lock_ttl_s == 30


def test_the_webhooks_lock_ttl_outlasts_their_timeout() -> None:
    """The webhooks share the feed's lock TTL: it is raised above twice NOTIFICATIONS__TIMEOUT_S."""
    settings = make_settings(notifications={"timeout_s": 60}, superlog={"lock_ttl_s": 30})
    assert delivery_settings(settings).lock_ttl_s > 2 * 60
    assert delivery_settings(make_settings()).lock_ttl_s == 30


@pytest.mark.parametrize("host", ["siem:514", "tcp://siem:abc", "udp://siem:514/extra", "siem host", "a/b"])
def test_a_syslog_host_that_is_not_a_host_stops_the_service(
    monkeypatch: pytest.MonkeyPatch, host: str
) -> None:
    with pytest.raises(SettingsError, match="DSXCONNECT_SYSLOG__HOST") as error:
        load(monkeypatch, DSXCONNECT_SYSLOG__HOST=host)
    assert "host" in str(error.value).lower()


@pytest.mark.parametrize(
    ("host", "expected"),
    [
        ("siem.example", ("siem.example", 514)),
        ("tcp://siem:1514", ("siem", 1514)),
        ("udp://siem/", ("siem", 514)),
        ("tcp://[2001:db8::1]:1514", ("2001:db8::1", 1514)),
        ("2001:db8::1", ("2001:db8::1", 514)),
        ("[2001:db8::1]", ("2001:db8::1", 514)),
    ],
)
def test_a_syslog_host_names_a_host(
    monkeypatch: pytest.MonkeyPatch, host: str, expected: tuple[str, int]
) -> None:
    settings = load(monkeypatch, DSXCONNECT_SYSLOG__HOST=host)
    assert (settings.syslog.host, settings.syslog.effective_port) == expected
