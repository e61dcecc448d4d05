"""Azure Blob Storage settings: 1.x names, an account to reach, secrets redacted, bad values named."""

from __future__ import annotations

import pytest

from connectors.azure_blob_storage.settings import AzureBlobStorageSettings, get_settings
from shared.settings import SettingsError, load_settings

pytestmark = pytest.mark.unit


def test_defaults_match_the_one_x_deployments(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DSXCONNECTOR_ASSET", "my-container/incoming")
    monkeypatch.setenv(
        "AZURE_STORAGE_CONNECTION_STRING", "DefaultEndpointsProtocol=https;AccountName=a;AccountKey=k"
    )
    get_settings.cache_clear()
    s = get_settings()
    get_settings.cache_clear()
    assert (s.name, s.port, s.route_prefix) == (
        "azure-blob-storage-connector",
        8610,
        "/azure-blob-storage-connector",
    )
    assert s.connector_url == "http://127.0.0.1:8610/azure-blob-storage-connector"
    assert s.azure_connection_string is not None and s.azure_tag_mode == "index"
    assert s.layout().asset.prefix == "incoming/"


def test_an_account_name_gives_the_public_endpoint(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DSXCONNECTOR_ASSET", "c")
    monkeypatch.setenv("AZURE_STORAGE_ACCOUNT_NAME", "scanned")
    assert load_settings(AzureBlobStorageSettings).account_url() == "https://scanned.blob.core.windows.net"
    monkeypatch.setenv("DSXCONNECTOR_AZURE_ACCOUNT_URL", "http://127.0.0.1:10000/devstoreaccount1/")
    assert load_settings(AzureBlobStorageSettings).account_url() == "http://127.0.0.1:10000/devstoreaccount1"


def test_secrets_are_redacted() -> None:
    s = AzureBlobStorageSettings(
        asset="c",
        azure_connection_string="AccountKey=k3y",
        azure_account_key="k3y2",
        azure_sas_token="sv=s4s",
    )
    shown = s.redacted()
    assert shown["azure_connection_string"] == shown["azure_account_key"] == shown["azure_sas_token"] == "***"
    assert "k3y" not in str(shown) and "s4s" not in str(shown)


@pytest.mark.parametrize(
    ("env", "variable"),
    [
        ({"DSXCONNECTOR_AZURE_ACCOUNT_NAME": "a"}, "DSXCONNECTOR_ASSET"),
        ({"DSXCONNECTOR_ASSET": "c"}, "DSXCONNECTOR_AZURE_CONNECTION_STRING"),
        ({"DSXCONNECTOR_AZURE_ACCOUNT_URL": "acct.blob.core.windows.net"}, "DSXCONNECTOR_AZURE_ACCOUNT_URL"),
        ({"DSXCONNECTOR_AZURE_TAG_MODE": "labels"}, "DSXCONNECTOR_AZURE_TAG_MODE"),
    ],
)
def test_bad_settings_name_the_variable(
    monkeypatch: pytest.MonkeyPatch, env: dict[str, str], variable: str
) -> None:
    if "DSXCONNECTOR_AZURE_ACCOUNT_NAME" not in env and "DSXCONNECTOR_ASSET" not in env:
        monkeypatch.setenv("DSXCONNECTOR_ASSET", "c")
        monkeypatch.setenv("DSXCONNECTOR_AZURE_ACCOUNT_NAME", "a")
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    with pytest.raises(SettingsError) as raised:
        load_settings(AzureBlobStorageSettings)
    assert variable in str(raised.value)
