"""Helpers of the deployment tests: the repository's deploy material, env files, settings names."""

from __future__ import annotations

import importlib.util
import re
import typing
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
from pydantic import AliasChoices, BaseModel

from connectors.manifest import PACKAGES, manifests

REPO = Path(__file__).resolve().parents[2]
COMPOSE_DIR = REPO / "deploy" / "compose"
HELM_DIR = REPO / "deploy" / "helm"

#: SPEC §1 ports by service folder
SERVICE_PORTS = {
    "dsx_connect": 8586,
    "dsxa_lite": 5000,
    # every connector as connectors/<package>/manifest.py declares it
    **{f"connectors/{m.package}": m.port for m in manifests().values()},
}
#: SPEC §9 core names (AUTH__* as named by issue #8; SYSLOG__*: the 1.x names of §11 and ours)
SPEC_CORE_VARS = (
    "DSXCONNECT_REDIS_URL",
    "DSXCONNECT_SCANNER__SCAN_BINARY_URL",
    "DSXCONNECT_SCANNER__AUTH_TOKEN",
    "DSXCONNECT_SCANNER__TIMEOUT_S",
    "DSXCONNECT_RESULTS_DB__RETAIN",
    "DSXCONNECT_USE_TLS",
    "DSXCONNECT_TLS_CERTFILE",
    "DSXCONNECT_TLS_KEYFILE",
    "DSXCONNECT_AUTH__ENABLED",
    "DSXCONNECT_AUTH__ENROLLMENT_TOKENS",
    "DSXCONNECT_AUTH__API_KEYS",
    "DSXCONNECT_SUPERLOG__ENABLED",
    "DSXCONNECT_SUPERLOG__DESTINATIONS",
)
SPEC_CONNECTOR_VARS = tuple(
    f"DSXCONNECTOR_{name}"
    for name in (
        "DSX_CONNECT_URL",
        "CONNECTOR_URL",
        "ASSET",
        "FILTER",
        "ITEM_ACTION",
        "ITEM_ACTION_MOVE_METAINFO",
        "MONITOR",
        "VERIFY_TLS",
        "CA_BUNDLE",
        "ENROLLMENT_TOKEN",
    )
)
#: names that must never carry a plain value in a compose file or a manifest
SECRET_NAME = re.compile(r"(TOKEN|SECRET|PASSWORD|API_KEYS|ACCOUNT_KEY|CONNECTION_STRING|SALT)$")


def env_assignments(path: Path) -> dict[str, str]:
    """``NAME=value`` lines of an env file (comments and blank lines skipped)."""
    values = {}
    for line in path.read_text().splitlines():
        if line.strip() and not line.lstrip().startswith("#") and "=" in line:
            name, value = line.split("=", 1)
            values[name.strip()] = value.strip()
    return values


def env_mentions(path: Path) -> set[str]:
    """Variables an env file sets or documents as a commented ``# NAME=`` line."""
    return set(re.findall(r"^#?\s*([A-Z][A-Z0-9_]*)=", path.read_text(), re.M))


def settings_env_names(cls: type[BaseModel], prefix: str = "", delimiter: str = "__") -> set[str]:
    """Environment names a settings model reads: prefix + field (nested models recursed), aliases."""
    config: Any = getattr(cls, "model_config", {})
    prefix = prefix or config.get("env_prefix", "") or ""
    names: set[str] = set()
    for field_name, field in cls.model_fields.items():
        alias = field.validation_alias
        if isinstance(alias, AliasChoices):
            names |= {choice for choice in alias.choices if isinstance(choice, str)}
        elif isinstance(alias, str):
            names.add(alias)
        env = f"{prefix}{field_name.upper()}"
        names.add(env)
        candidates = [field.annotation, *typing.get_args(field.annotation)]
        for candidate in candidates:
            if isinstance(candidate, type) and issubclass(candidate, BaseModel):
                names |= settings_env_names(candidate, f"{env}{delimiter}", delimiter)
    return names


def core_env_names() -> set[str]:
    """Every name the core reads: its settings, the SIEM feed's, and SPEC §9/§11 names not coded yet."""
    from dsx_connect.settings import Settings

    names = settings_env_names(Settings) | set(SPEC_CORE_VARS)
    names |= {"DSXCONNECT_SYSLOG__SYSLOG_SERVER_URL", "DSXCONNECT_SYSLOG__SYSLOG_SERVER_PORT"}
    names.add("PROMETHEUS_MULTIPROC_DIR")  # prometheus_client's own variable (docs/metrics.md)
    try:
        from dsx_connect.superlog.config import SuperlogSettings, SyslogSettings
    except ImportError:  # the SIEM feed is not there: its SPEC names only
        names |= {"DSXCONNECT_SYSLOG__HOST", "DSXCONNECT_SYSLOG__PORT", "DSXCONNECT_SYSLOG__TRANSPORT"}
    else:
        names |= settings_env_names(SyslogSettings, "DSXCONNECT_SYSLOG__")
        names |= settings_env_names(SuperlogSettings, "DSXCONNECT_SUPERLOG__")
    return names


def connector_env_names() -> set[str]:
    """Names every connector reads (the shared settings), plus each existing connector's own."""
    from shared.connector.settings import ConnectorSettings

    names = settings_env_names(ConnectorSettings) | set(SPEC_CONNECTOR_VARS)
    for package in PACKAGES:
        try:
            module = importlib.import_module(f"connectors.{package}.settings")
        except ImportError:
            continue
        for value in vars(module).values():
            if isinstance(value, type) and issubclass(value, ConnectorSettings):
                names |= settings_env_names(value)
    return names


@pytest.fixture(scope="session")
def tasks_module() -> ModuleType:
    """The repository's ``tasks`` package (invoke tasks and their helpers)."""
    return importlib.import_module("tasks")
