"""The ``DSX_*`` knobs of the local stack, typed (pydantic-settings), and the config one stack runs with.

:class:`DevSettings` reads the variables; :class:`StackConfig` is what the rest of the package uses
(ports resolved against the chosen connector, URLs, folders of the run directory). A bad value stops
``make up`` with a :class:`~devstack.errors.StackError` naming the variable.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlsplit

from pydantic import ValidationError, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from devstack.errors import StackError

REPO_ROOT = Path(__file__).resolve().parents[1]
API_PREFIX = "/dsx-connect/api/v1"
CONNECTOR_PREFIX = "/filesystem-connector"
SAMPLE_BUCKET = "dsx-sample"
QUARANTINE_PREFIX = "dsxconnect-quarantine"


@dataclass(frozen=True)
class ConnectorChoice:
    """A connector ``make up`` can run: its app, route prefix, default port and (cloud) emulator."""

    name: str
    app: str
    port: int
    emulator: str = ""  # what the sample bucket lives in, for people
    emulator_port: int = 0
    prefix: str = ""
    sample: str = "folder"  # folder, bucket (an emulator) or drive (the fake Graph)

    @property
    def cloud(self) -> bool:
        return bool(self.emulator)


def _choices() -> dict[str, ConnectorChoice]:
    """The connectors as ``connectors/<package>/manifest.py`` declare them."""
    if str(REPO_ROOT) not in sys.path:
        sys.path.insert(0, str(REPO_ROOT))
    from connectors.manifest import manifests

    return {
        package: ConnectorChoice(m.package, m.app, m.port, m.emulator, m.emulator_port, m.prefix, m.sample)
        for package, m in manifests().items()
    }


CONNECTORS = _choices()

_ON = ("1", "true", "yes", "on")


def _on(env: Mapping[str, str], name: str) -> bool:
    return env.get(name, "").strip().lower() in _ON


class DevSettings(BaseSettings):
    """The ``DSX_*`` variables (see ``python -m devstack --help``); empty values count as unset."""

    model_config = SettingsConfigDict(env_prefix="DSX_", extra="ignore", env_ignore_empty=True)

    run_dir: Path | None = None
    redis_port: int = 6379
    dsxa_port: int = 5000
    core_port: int = 8586
    fs_port: int = 8620
    connector: str = "filesystem"
    connector_port: int | None = None
    emulator_port: int | None = None
    scan_concurrency: int = 2
    core_workers: int = 1
    start_timeout: float = 60.0
    scan_timeout: float = 180.0
    syslog: bool = False
    syslog_port: int = 5514
    tls: bool = False
    dsxa: bool = False

    @field_validator(
        "redis_port", "dsxa_port", "core_port", "fs_port", "connector_port", "emulator_port", "syslog_port"
    )
    @classmethod
    def _a_port(cls, value: int | None) -> int | None:
        if value is not None and not 0 < value <= 65535:
            raise ValueError("is not a TCP port (1-65535)")
        return value

    @field_validator("scan_concurrency", "core_workers", "start_timeout", "scan_timeout")
    @classmethod
    def _positive(cls, value: float) -> float:
        if value <= 0:
            raise ValueError("must be positive")
        return value

    @field_validator("syslog", "tls", "dsxa", mode="before")
    @classmethod
    def _switch(cls, value: Any) -> bool:
        return str(value).strip().lower() in _ON

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> DevSettings:
        """The settings in ``env`` (not ``os.environ``); StackError naming the first bad variable."""
        values = {
            name[4:].lower(): raw.strip()
            for name, raw in env.items()
            if name.startswith("DSX_") and raw.strip()
        }
        try:
            return cls.model_validate(values)
        except ValidationError as exc:
            error = exc.errors()[0]
            field = str(error["loc"][0]) if error["loc"] else "?"
            name, raw = f"DSX_{field.upper()}", values.get(field, "")
            reason = str(error.get("ctx", {}).get("error", "")) or "is not a number"
            raise StackError(f"{name}={raw!r} {reason}") from None


@dataclass(frozen=True)
class StackConfig:
    """Where one stack lives and which ports it takes."""

    run_dir: Path
    redis_port: int = 6379
    dsxa_port: int = 5000
    core_port: int = 8586
    fs_port: int = 8620
    connector: str = "filesystem"
    cloud_port: int = 0  # 0: the cloud connector's own port
    emulator_port: int = 0  # 0: the emulator's usual port
    scan_concurrency: int = 2
    core_workers: int = 1  # uvicorn worker processes of the core API (DSX_CORE_WORKERS)
    start_timeout: float = 60.0
    scan_timeout: float = 180.0
    syslog_port: int = 0  # 0: no rsyslog; DSX_SYSLOG=1 starts one receiving the scan-result feed
    tls: bool = False  # DSX_TLS=1: HTTPS on every listener, verified against the run's dev CA
    scanner_url: str = ""  # DSXCONNECT_SCANNER__SCAN_BINARY_URL: an external scanner instead of dsxa_lite
    start_dsxa: bool = True  # False when scanner_url is given, unless DSX_DSXA=1
    python: str = sys.executable

    @classmethod
    def from_env(cls, env: Mapping[str, str] = os.environ) -> StackConfig:
        """Read the ``DSX_*`` knobs; a bad value raises StackError naming the variable."""
        knobs = DevSettings.from_env(env)
        if knobs.connector not in CONNECTORS:
            raise StackError(
                f"DSX_CONNECTOR={knobs.connector!r} (make up CONNECTOR=...) is not one of {', '.join(CONNECTORS)}"
            )
        choice = CONNECTORS[knobs.connector]
        scanner_url = external_scanner_url(env)
        return cls(
            scanner_url=scanner_url,
            start_dsxa=not scanner_url or knobs.dsxa,
            connector=knobs.connector,
            cloud_port=(knobs.connector_port or choice.port) if choice.cloud else 0,
            emulator_port=(knobs.emulator_port or choice.emulator_port) if choice.cloud else 0,
            run_dir=run_dir_from_env(env),
            redis_port=knobs.redis_port,
            dsxa_port=knobs.dsxa_port,
            core_port=knobs.core_port,
            fs_port=knobs.fs_port,
            scan_concurrency=knobs.scan_concurrency,
            core_workers=knobs.core_workers,
            start_timeout=knobs.start_timeout,
            scan_timeout=knobs.scan_timeout,
            syslog_port=knobs.syslog_port if knobs.syslog else 0,
            tls=knobs.tls,
        )

    @property
    def scheme(self) -> str:
        return "https" if self.tls else "http"

    @property
    def core_url(self) -> str:
        return f"{self.scheme}://127.0.0.1:{self.core_port}"

    @property
    def api_url(self) -> str:
        return self.core_url + API_PREFIX

    @property
    def dsxa_url(self) -> str:
        return f"{self.scheme}://127.0.0.1:{self.dsxa_port}"

    @property
    def scan_binary_url(self) -> str:
        """The scanner the core and workers call: the external one if given, else dsxa_lite."""
        return self.scanner_url or f"{self.dsxa_url}/scan/binary/v2"

    @property
    def choice(self) -> ConnectorChoice:
        return CONNECTORS[self.connector]

    @property
    def connector_port(self) -> int:
        return (self.cloud_port or self.choice.port) if self.choice.cloud else self.fs_port

    @property
    def connector_url(self) -> str:
        return f"{self.scheme}://127.0.0.1:{self.connector_port}{self.choice.prefix}"

    @property
    def emulator_url(self) -> str:
        scheme = "https" if self.choice.sample == "drive" else "http"  # msal wants an https login host
        return f"{scheme}://127.0.0.1:{self.emulator_port or self.choice.emulator_port}"

    @property
    def redis_url(self) -> str:
        """The URL the core and workers use, with the run's Redis password (generated on first use)."""
        from devstack.auth import stack_secrets

        password = quote(stack_secrets(self.run_dir)["redis_password"], safe="")
        return f"redis://:{password}@127.0.0.1:{self.redis_port}/0"

    @property
    def log_dir(self) -> Path:
        return self.run_dir / "logs"

    @property
    def sample_dir(self) -> Path:
        return self.run_dir / "sample"

    @property
    def quarantine_dir(self) -> Path:
        return self.run_dir / "quarantine"


#: the names the core reads a scanner URL from (SPEC §9, §11), as ``make up`` honours them: name -> suffix
SCANNER_URL_NAMES = {
    "DSXCONNECT_SCANNER__SCAN_BINARY_URL": "",
    "DSXCONNECT_SCANNER__BASE_URL": "/scan/binary/v2",  # 1.x: the scanner's base URL
    "DSXA_SCANNER_URL": "/scan/binary/v2",  # the guide's short name (a full .../v2 URL is kept)
}


def external_scanner_url(env: Mapping[str, str] = os.environ) -> str:
    """The scan URL of an external scanner the caller exported ('' for none); StackError naming the
    variable when it is not an http(s) URL."""
    for name, suffix in SCANNER_URL_NAMES.items():
        raw = env.get(name, "").strip()
        if not raw:
            continue
        if urlsplit(raw).scheme not in ("http", "https"):
            raise StackError(
                f"{name}={raw!r} is not an http(s) URL (e.g. http://dsxa.example:5000/scan/binary/v2)"
            )
        url = raw.rstrip("/")
        return url if not suffix or url.endswith("/v2") else url + suffix
    return ""


def run_dir_from_env(env: Mapping[str, str] = os.environ) -> Path:
    """``DSX_RUN_DIR`` (relative to the current directory), else ``.run`` in the repository."""
    return Path(env.get("DSX_RUN_DIR") or REPO_ROOT / ".run").expanduser().resolve()
