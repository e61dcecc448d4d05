"""Google Cloud Storage settings: 1.x names, credentials file checks, bad values named."""

from __future__ import annotations

from pathlib import Path

import pytest

from connectors.google_cloud_storage.connector import GoogleCloudStorageConnector
from connectors.google_cloud_storage.settings import GoogleCloudStorageSettings, get_settings
from shared.settings import SettingsError, load_settings

pytestmark = pytest.mark.unit


def test_defaults_match_the_one_x_deployments(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DSXCONNECTOR_ASSET", "my-bucket/incoming")
    get_settings.cache_clear()
    s = get_settings()
    get_settings.cache_clear()
    assert (s.name, s.port, s.route_prefix) == (
        "google-cloud-storage-connector",
        8630,
        "/google-cloud-storage-connector",
    )
    assert s.connector_url == "http://127.0.0.1:8630/google-cloud-storage-connector"
    assert s.gcs_credentials_file is None and s.gcs_anonymous is False


def test_one_x_names_are_accepted(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    key = tmp_path / "key.json"
    key.write_text("{}")
    monkeypatch.setenv("DSXCONNECTOR_ASSET", "b")
    monkeypatch.setenv("DSXCONNECTOR_GOOGLE_APPLICATION_CREDENTIALS", str(key))
    monkeypatch.setenv("DSXCONNECTOR_GCP_PROJECT", "demo")
    s = load_settings(GoogleCloudStorageSettings)
    assert (s.gcs_credentials_file, s.gcs_project) == (str(key), "demo")


def test_a_file_that_is_no_service_account_key_stops_the_connector(tmp_path: Path) -> None:
    key = tmp_path / "key.json"
    key.write_text('{"type": "authorized_user"}')
    with pytest.raises(ValueError, match="DSXCONNECTOR_GCS_CREDENTIALS_FILE"):
        GoogleCloudStorageConnector(GoogleCloudStorageSettings(asset="b", gcs_credentials_file=str(key)))


@pytest.mark.parametrize(
    ("env", "variable"),
    [
        ({}, "DSXCONNECTOR_ASSET"),
        ({"DSXCONNECTOR_GCS_CREDENTIALS_FILE": "/nonexistent/key.json"}, "DSXCONNECTOR_GCS_CREDENTIALS_FILE"),
        ({"DSXCONNECTOR_GCS_ENDPOINT_URL": "localhost:9023"}, "DSXCONNECTOR_GCS_ENDPOINT_URL"),
        ({"DSXCONNECTOR_GCS_LIST_PAGE_SIZE": "0"}, "DSXCONNECTOR_GCS_LIST_PAGE_SIZE"),
    ],
)
def test_bad_settings_name_the_variable(
    monkeypatch: pytest.MonkeyPatch, env: dict[str, str], variable: str
) -> None:
    if env:
        monkeypatch.setenv("DSXCONNECTOR_ASSET", "b")
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    with pytest.raises(SettingsError) as raised:
        load_settings(GoogleCloudStorageSettings)
    assert variable in str(raised.value)
