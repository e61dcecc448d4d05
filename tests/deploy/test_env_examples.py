"""Env examples: every SPEC §9 variable documented, and the values load into each service's settings."""

from __future__ import annotations

import importlib
import os
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.deploy.conftest import (
    COMPOSE_DIR,
    SECRET_NAME,
    SPEC_CONNECTOR_VARS,
    SPEC_CORE_VARS,
    connector_env_names,
    core_env_names,
    env_assignments,
    env_mentions,
)

pytestmark = pytest.mark.unit

#: the Entra app's credentials, left commented out in the Graph connectors' examples (secrets)
GRAPH_APP = {
    "DSXCONNECTOR_SP_TENANT_ID": "contoso.onmicrosoft.com",
    "DSXCONNECTOR_SP_CLIENT_ID": "11111111-2222-3333-4444-555555555555",
    "DSXCONNECTOR_SP_CLIENT_SECRET": "app-secret",
}
CONNECTOR_EXAMPLES = {  # env example -> (settings module, overrides that stand for a real asset)
    "filesystem": ("connectors.filesystem.settings", {}),
    "aws-s3": ("connectors.aws_s3.settings", {"DSXCONNECTOR_ASSET": "acme-bucket/in"}),
    "azure-blob-storage": (
        "connectors.azure_blob_storage.settings",
        {"DSXCONNECTOR_ASSET": "acme-container", "DSXCONNECTOR_AZURE_ACCOUNT_NAME": "acme"},
    ),
    "google-cloud-storage": (
        "connectors.google_cloud_storage.settings",
        {"DSXCONNECTOR_ASSET": "acme-bucket"},
    ),
    "sharepoint": ("connectors.sharepoint.settings", GRAPH_APP),
    "onedrive": ("connectors.onedrive.settings", GRAPH_APP),
}
#: variables the compose files and the env examples use that no service reads
COMPOSE_ONLY = {
    "COMPOSE_PROFILES",
    "DSX_DOCKER_NETWORK",
    "DSX_CERTS_DIR",
    "DSX_SECRETS_DIR",
    "DSXCONNECT_ENV_FILE",
    "DSXCONNECT_IMAGE",
    "DSXA_LITE_IMAGE",
    "REDIS_IMAGE",
    "RSYSLOG_IMAGE",
    # the `postgres` profile (the results history)
    "POSTGRES_PASSWORD",
    "POSTGRES_USER",
    "POSTGRES_DB",
    "DSXCONNECT_API_HOST_PORT",
    "DSXCONNECT_SCAN_REQUEST_WORKER_CONCURRENCY",
    "DSXA_LITE_HOST_PORT",
    "DSXA_LITE_CONFIG_DIR",
    "DSXA_LITE_ENV_FILE",
    "GCS_CREDENTIALS_DIR",
    # the DSXA appliance of docker-compose-dsxa.yaml (its own settings, as the DSXA guide names them)
    "DSXA_IMAGE",
    "DSXA_HOST_PORT",
    "APPLIANCE_URL",
    "TOKEN",
    "SCANNER_ID",
    "FLAVOR",
    "NO_SSL",
    # Redis of the core compose file (DSXCONNECT_REDIS_URL is built from them)
    "REDIS_PASSWORD",
    "REDIS_HOST",
    "REDIS_PORT",
    "REDIS_SCHEME",
    "REDIS_MAXMEMORY",
    "DSX_REDIS_NETWORK",
}


def clean_environment(monkeypatch: pytest.MonkeyPatch, values: dict[str, str]) -> None:
    for name in list(os.environ):
        if name.startswith(("DSXCONNECT", "DSXA_LITE_", "AWS_", "AZURE_", "GOOGLE_")) or name in (
            "APP_ENV",
            "REDIS_URL",
            "USE_TLS",
        ):
            monkeypatch.delenv(name)
    for name, value in values.items():
        monkeypatch.setenv(name, value)


def compose_only(name: str) -> bool:
    return name in COMPOSE_ONLY or name.endswith(
        ("_IMAGE", "_HOST_PORT", "_ENV_FILE", "_SCAN_DIR", "_QUARANTINE_DIR", "_RUN_AS")
    )


def test_core_example_documents_every_spec_variable() -> None:
    mentioned = env_mentions(COMPOSE_DIR / "core.env.example")
    assert set(SPEC_CORE_VARS) <= mentioned, set(SPEC_CORE_VARS) - mentioned
    assert any(name.startswith("DSXCONNECT_SYSLOG__") for name in mentioned)


def test_core_example_names_are_real_settings() -> None:
    known = core_env_names() | {
        f"DSXA_LITE_{n}"
        for n in ("MAX_FILE_SIZE_BYTES", "SPOOL_THRESHOLD_BYTES", "YARA_WINDOW_BYTES", "BLOCKLIST")
    }
    unknown = {n for n in env_mentions(COMPOSE_DIR / "core.env.example") if not compose_only(n)} - known
    assert not unknown, f"core.env.example names no service reads: {sorted(unknown)}"


@pytest.mark.parametrize("stem", CONNECTOR_EXAMPLES)
def test_connector_example_documents_every_spec_variable(stem: str) -> None:
    mentioned = env_mentions(COMPOSE_DIR / f"{stem}.env.example")
    compose = yaml.safe_load((COMPOSE_DIR / f"docker-compose-{stem}-connector.yaml").read_text())
    (service,) = compose["services"].values()
    covered = mentioned | set(service["environment"])
    assert set(SPEC_CONNECTOR_VARS) <= covered, set(SPEC_CONNECTOR_VARS) - covered


@pytest.mark.parametrize("stem", CONNECTOR_EXAMPLES)
def test_connector_example_names_are_real_settings(stem: str) -> None:
    storage = {"AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_DEFAULT_REGION"}
    storage |= {"AZURE_STORAGE_CONNECTION_STRING", "GOOGLE_APPLICATION_CREDENTIALS"}
    storage |= {"DSXCONNECTOR_SP_TENANT_ID", "DSXCONNECTOR_SP_CLIENT_ID", "DSXCONNECTOR_SP_CLIENT_SECRET"}
    known = connector_env_names() | storage
    unknown = {n for n in env_mentions(COMPOSE_DIR / f"{stem}.env.example") if not compose_only(n)} - known
    assert not unknown, f"{stem}.env.example names no service reads: {sorted(unknown)}"


@pytest.mark.parametrize("path", sorted(COMPOSE_DIR.glob("*.env.example")), ids=lambda p: p.name)
def test_no_empty_secret_is_set(path: Path) -> None:
    """An empty `NAME=` reaches the service as an empty string: secrets stay commented until filled."""
    for name, value in env_assignments(path).items():
        assert not (SECRET_NAME.search(name) and value == ""), f"{path.name}: {name}= (comment it out)"


def test_core_example_raises_no_unknown_setting_warning_in_the_containers(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """`env_file: core.env` hands every line to every core container, the compose-only DSXCONNECT_*
    names too (image, host port, scan concurrency): none may be reported as an unknown setting."""
    from dsx_connect.settings import unknown_core_variables

    monkeypatch.chdir(COMPOSE_DIR)
    named = {name: "x" for name in env_mentions(COMPOSE_DIR / "core.env.example")}
    assert {
        "DSXCONNECT_IMAGE",
        "DSXCONNECT_API_HOST_PORT",
        "DSXCONNECT_SCAN_REQUEST_WORKER_CONCURRENCY",
    } <= set(named)
    assert unknown_core_variables(named, env_file="/nonexistent") == []


def test_core_example_loads_into_the_core_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    from dsx_connect.settings import Settings
    from shared.settings import load_settings

    values = {
        k: v for k, v in env_assignments(COMPOSE_DIR / "core.env.example").items() if not compose_only(k)
    }
    clean_environment(monkeypatch, values)
    settings = load_settings(Settings, _env_file=None)
    assert "DSXCONNECT_REDIS_URL" not in values  # the compose file builds it, with the password
    assert settings.scanner.scan_binary_url == "http://dsxa-lite:5000/scan/binary/v2"
    assert settings.results_db.retain.count == 50000 and settings.use_tls is False


def test_dsxa_lite_example_loads_into_its_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    from dsxa_lite.settings import DsxaLiteSettings
    from shared.settings import load_settings

    values = {
        k: v for k, v in env_assignments(COMPOSE_DIR / "dsxa-lite.env.example").items() if not compose_only(k)
    }
    clean_environment(monkeypatch, values)
    assert load_settings(DsxaLiteSettings).max_file_size_bytes == 2 * 1024**3


@pytest.mark.parametrize("stem", CONNECTOR_EXAMPLES)
def test_connector_example_loads_into_its_settings(
    stem: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    module_name, overrides = CONNECTOR_EXAMPLES[stem]
    module = importlib.import_module(module_name)
    from shared.settings import load_settings

    path = COMPOSE_DIR / f"{stem}.env.example"
    values = {k: v for k, v in env_assignments(path).items() if not compose_only(k)}
    compose = yaml.safe_load((COMPOSE_DIR / f"docker-compose-{stem}-connector.yaml").read_text())
    (service,) = compose["services"].values()
    for key, value in service["environment"].items():  # what the compose file sets, defaults resolved
        values[key] = str(value).split(":-", 1)[1].rstrip("}") if str(value).startswith("${") else str(value)
    if stem == "filesystem":  # the mounts, here on this machine
        (tmp_path / "scan").mkdir()
        values |= {
            "DSXCONNECTOR_ASSET": str(tmp_path / "scan"),
            "DSXCONNECTOR_ITEM_ACTION_MOVE_METAINFO": str(tmp_path / "q"),
        }
    values.pop("GOOGLE_APPLICATION_CREDENTIALS", None)
    clean_environment(monkeypatch, values | overrides)
    settings_cls: Any = next(
        obj
        for obj in vars(module).values()
        if isinstance(obj, type) and obj.__module__ == module_name and hasattr(obj, "model_fields")
    )
    settings = load_settings(settings_cls)
    assert settings.connector_url.endswith(f"/{settings.name}")
    assert settings.dsx_connect_url == "http://dsx-connect-api:8586"
