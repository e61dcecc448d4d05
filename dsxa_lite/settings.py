"""Settings of the dsxa_lite scanner (env prefix ``DSXA_LITE_``, SPEC §9).

Every value is checked at start: a bad one stops the service with a message naming the variable
(``shared.settings.load_settings``).
"""

from __future__ import annotations

import re
from functools import lru_cache
from pathlib import Path
from typing import Annotated

from pydantic import Field, SecretStr, ValidationInfo, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from shared.settings import load_settings

DEFAULT_RULES_DIR = Path(__file__).resolve().parent / "rules"
SHA256_RE = re.compile(r"[0-9a-f]{64}")

KiB = 1024
MiB = 1024 * KiB
GiB = 1024 * MiB


class DsxaLiteSettings(BaseSettings):
    """Configuration of one dsxa_lite process.

    - ``AUTH_TOKEN``: when set, scan requests must carry it in header ``AUTH_TOKEN`` or ``AUTH``.
    - ``RULES_DIR``: folder whose ``*.yar`` files are compiled once at start.
    - ``BLOCKLIST_FILE`` / ``BLOCKLIST``: SHA-256 block list (file: one hash a line, ``#``
      comments; env: CSV).
    - ``MAX_FILE_SIZE_BYTES``: larger bodies answer ``Non Compliant`` / ``File Size Too Large``.
    - ``SPOOL_THRESHOLD_BYTES``: bodies larger than this go to an unnamed temp file in
      ``SPOOL_DIR`` instead of memory.
    - ``YARA_WINDOW_BYTES`` / ``YARA_WINDOW_OVERLAP_BYTES``: larger files are YARA-scanned in
      overlapping windows read from the spool file (a pattern longer than the overlap may be
      missed where it straddles two windows).
    - ``SCAN_TIMEOUT_S``: YARA timeout of one scan call (one window for large files).
    - ``LARGE_SCAN_CONCURRENCY``: spooled files scanned at once (each holds one window in memory),
      large bodies scanned as they arrive at once, and in-memory bodies past
      ``service.INLINE_SCAN_BYTES`` scanned at once (each with a YARA worker process,
      :mod:`dsxa_lite.yara_worker`).
    - ``ARCHIVE_*``: limits of unpacking archives (:class:`dsxa_lite.archives.ArchiveLimits`):
      ``MAX_DEPTH``, ``MAX_MEMBERS``, ``MAX_TOTAL_BYTES``, ``MAX_RATIO`` (past
      ``RATIO_FLOOR_BYTES``), ``TIME_LIMIT_S``; ``ARCHIVE_PASSWORDS`` (CSV) are tried on encrypted
      members after the request's ``scan_password`` header; ``ARCHIVES=false`` turns unpacking off.
    - ``SCAN_ROOTS``: folders ``GET /scan/by_path`` may read (CSV; empty: the route is off).
    - ``VERDICT_CACHE_SIZE``: verdicts kept by SHA-256 for ``/scan/by_hash`` (0: none).
    - ``CLAMD``: a clamd to ask too (``/path/to/clamd.sock``, ``unix:/path`` or ``host:port``);
      ``CLAMD_TIMEOUT_S`` per call; its ``VERSION`` (database number and date, which freshclam
      changes) is asked again at most every ``CLAMD_VERSION_INTERVAL_S`` (when a request comes),
      and the identity follows it.
    - ``HOST`` / ``PORT``: where ``python -m dsxa_lite`` listens (127.0.0.1 unless told otherwise:
      containers set ``0.0.0.0``).
    - ``USE_TLS`` / ``TLS_CERTFILE`` / ``TLS_KEYFILE``: serve HTTPS (``python -m dsxa_lite``; under
      uvicorn directly, pass ``--ssl-certfile``/``--ssl-keyfile``).
    """

    model_config = SettingsConfigDict(env_prefix="DSXA_LITE_", env_nested_delimiter="__", extra="ignore")

    auth_token: SecretStr | None = None
    rules_dir: Path = DEFAULT_RULES_DIR
    blocklist_file: Path | None = None
    blocklist: Annotated[list[str], NoDecode] = Field(default_factory=list)
    max_file_size_bytes: int = Field(default=2 * GiB, ge=0)
    spool_threshold_bytes: int = Field(default=8 * MiB, ge=0)
    spool_dir: Path | None = None
    yara_window_bytes: int = Field(default=16 * MiB, ge=4 * KiB)
    yara_window_overlap_bytes: int = Field(default=64 * KiB, ge=0)
    scan_timeout_s: int = Field(default=30, ge=1)
    large_scan_concurrency: int = Field(default=2, ge=1)
    archives: bool = True
    archive_max_depth: int = Field(default=5, ge=1, le=64)
    archive_max_members: int = Field(default=100_000, ge=1)
    archive_max_total_bytes: int = Field(default=4 * GiB, ge=1)
    archive_max_ratio: int = Field(default=100, ge=1)
    archive_ratio_floor_bytes: int = Field(default=32 * MiB, ge=0)
    archive_time_limit_s: float = Field(default=60.0, gt=0)
    archive_passwords: Annotated[list[SecretStr], NoDecode] = Field(default_factory=list)
    scan_roots: Annotated[list[Path], NoDecode] = Field(default_factory=list)
    verdict_cache_size: int = Field(default=100_000, ge=0)
    by_path_results: int = Field(default=10_000, ge=1)
    clamd: str | None = None
    clamd_timeout_s: float = Field(default=30.0, gt=0)
    clamd_version_interval_s: float = Field(default=60.0, ge=0)
    host: str = "127.0.0.1"
    port: int = Field(default=5000, ge=1, le=65535)
    use_tls: bool = False
    tls_certfile: Path | None = None
    tls_keyfile: Path | None = None

    @field_validator("auth_token", mode="before")
    @classmethod
    def _empty_token_is_unset(cls, value: object) -> object:
        return None if isinstance(value, str) and not value.strip() else value

    @field_validator("blocklist", "archive_passwords", "scan_roots", mode="before")
    @classmethod
    def _split_csv(cls, value: object) -> object:
        if isinstance(value, str):
            return [part for part in (p.strip() for p in value.split(",")) if part]
        return value

    @field_validator("blocklist")
    @classmethod
    def _entries_are_sha256_and_threat_type(cls, value: list[str]) -> list[str]:
        # "<sha256>" or "<sha256>:<THREAT_TYPE>"; kept as text, parsed by the block-list engine
        from dsxa_lite.engines.blocklist import parse_entry

        entries = []
        for entry in value:
            digest, kind = parse_entry(entry, separator=":")
            entries.append(f"{digest}:{kind}")
        return entries

    @field_validator("scan_roots")
    @classmethod
    def _roots_are_folders(cls, value: list[Path]) -> list[Path]:
        roots = []
        for root in value:
            if not root.is_absolute() or not root.is_dir():
                raise ValueError(f"not an absolute path to a folder: {str(root)!r}")
            roots.append(root.resolve())
        return roots

    @field_validator("clamd")
    @classmethod
    def _clamd_address(cls, value: str | None) -> str | None:
        if value is None or not value.strip():
            return None
        from dsxa_lite.engines.clamav import parse_address

        parse_address(value)
        return value.strip()

    @field_validator("rules_dir")
    @classmethod
    def _rules_dir_has_rules(cls, value: Path) -> Path:
        if not value.is_dir():
            raise ValueError(f"not a directory: {str(value)!r}")
        if not any(value.glob("*.yar")):
            raise ValueError(f"no *.yar files in {str(value)!r}")
        return value

    @field_validator("blocklist_file")
    @classmethod
    def _blocklist_file_exists(cls, value: Path | None) -> Path | None:
        if value is not None and not value.is_file():
            raise ValueError(f"no such file: {str(value)!r}")
        return value

    @field_validator("spool_dir")
    @classmethod
    def _spool_dir_exists(cls, value: Path | None) -> Path | None:
        if value is not None and not value.is_dir():
            raise ValueError(f"not a directory: {str(value)!r}")
        return value

    @field_validator("tls_certfile", "tls_keyfile")
    @classmethod
    def _tls_file_exists(cls, value: Path | None) -> Path | None:
        if value is not None and not value.is_file():
            raise ValueError(f"no such file: {str(value)!r}")
        return value

    @model_validator(mode="after")
    def _tls_needs_files(self) -> DsxaLiteSettings:
        if self.use_tls and not (self.tls_certfile and self.tls_keyfile):
            raise ValueError("DSXA_LITE_USE_TLS needs DSXA_LITE_TLS_CERTFILE and DSXA_LITE_TLS_KEYFILE")
        return self

    @field_validator("yara_window_overlap_bytes")
    @classmethod
    def _overlap_smaller_than_window(cls, value: int, info: ValidationInfo) -> int:
        window = info.data.get("yara_window_bytes")
        if window is not None and value * 2 > window:
            raise ValueError(f"must be at most half of DSXA_LITE_YARA_WINDOW_BYTES ({window})")
        return value


@lru_cache
def get_settings() -> DsxaLiteSettings:
    """The process's settings, read once from the environment (exits naming a bad variable)."""
    return load_settings(DsxaLiteSettings)
