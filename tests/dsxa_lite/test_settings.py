"""Settings: defaults, CSV parsing, and start-up refusal naming the bad variable."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from dsxa_lite.settings import DEFAULT_RULES_DIR, DsxaLiteSettings, get_settings
from shared.settings import SettingsError, load_settings

from .samples import sha256

pytestmark = pytest.mark.unit


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    for name in list(os.environ):
        if name.startswith("DSXA_LITE_"):
            monkeypatch.delenv(name)
    get_settings.cache_clear()
    yield
    get_settings.cache_clear()


def test_defaults_match_the_dsxa_limits() -> None:
    settings = load_settings(DsxaLiteSettings)
    assert settings.max_file_size_bytes == 2 * 1024**3
    assert settings.spool_threshold_bytes == 8 * 1024**2
    assert settings.yara_window_bytes == 16 * 1024**2
    assert settings.rules_dir == DEFAULT_RULES_DIR
    assert settings.auth_token is None
    assert settings.blocklist == []
    assert settings.port == 5000


def test_get_settings_is_cached(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DSXA_LITE_SCAN_TIMEOUT_S", "7")
    first = get_settings()
    monkeypatch.setenv("DSXA_LITE_SCAN_TIMEOUT_S", "9")
    assert get_settings() is first
    assert first.scan_timeout_s == 7


def test_blocklist_is_read_as_csv_and_lower_cased(monkeypatch: pytest.MonkeyPatch) -> None:
    a, b = sha256(b"a"), sha256(b"b")
    monkeypatch.setenv("DSXA_LITE_BLOCKLIST", f" {a.upper()} ,{b}:worm,")
    assert load_settings(DsxaLiteSettings).blocklist == [f"{a}:VIRUS", f"{b}:WORM"]


def test_defaults_bind_loopback_and_unpack_archives() -> None:
    settings = DsxaLiteSettings()
    assert settings.host == "127.0.0.1"
    assert settings.archives and settings.archive_max_depth == 5
    assert settings.scan_roots == [] and settings.clamd is None


def test_csv_settings_are_split(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("DSXA_LITE_ARCHIVE_PASSWORDS", "infected, virus")
    monkeypatch.setenv("DSXA_LITE_SCAN_ROOTS", f"{tmp_path}")
    settings = load_settings(DsxaLiteSettings)
    assert [p.get_secret_value() for p in settings.archive_passwords] == ["infected", "virus"]
    assert settings.scan_roots == [tmp_path.resolve()]


def test_empty_auth_token_means_no_auth(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DSXA_LITE_AUTH_TOKEN", "  ")
    assert load_settings(DsxaLiteSettings).auth_token is None


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("DSXA_LITE_MAX_FILE_SIZE_BYTES", "abc"),
        ("DSXA_LITE_MAX_FILE_SIZE_BYTES", "-1"),
        ("DSXA_LITE_SPOOL_THRESHOLD_BYTES", "lots"),
        ("DSXA_LITE_BLOCKLIST", "not-a-hash"),
        ("DSXA_LITE_RULES_DIR", "/nonexistent/rules"),
        ("DSXA_LITE_BLOCKLIST_FILE", "/nonexistent/blocklist.txt"),
        ("DSXA_LITE_SCAN_TIMEOUT_S", "0"),
        ("DSXA_LITE_YARA_WINDOW_OVERLAP_BYTES", str(16 * 1024**2)),
        ("DSXA_LITE_BLOCKLIST", "0" * 64 + ":MALWARE"),
        ("DSXA_LITE_SCAN_ROOTS", "relative/folder"),
        ("DSXA_LITE_SCAN_ROOTS", "/nonexistent/root"),
        ("DSXA_LITE_CLAMD", "not an address"),
        ("DSXA_LITE_ARCHIVE_MAX_DEPTH", "0"),
        ("DSXA_LITE_ARCHIVE_TIME_LIMIT_S", "0"),
    ],
)
def test_bad_value_stops_start_naming_the_variable(
    monkeypatch: pytest.MonkeyPatch, name: str, value: str
) -> None:
    monkeypatch.setenv(name, value)
    with pytest.raises(SettingsError) as raised:
        load_settings(DsxaLiteSettings)
    message = str(raised.value)
    assert f"  {name}:" in message
    assert message.count("\n  ") == 1  # only the bad variable is named


def test_rules_dir_without_rules_is_refused(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("DSXA_LITE_RULES_DIR", str(tmp_path))
    with pytest.raises(SettingsError, match=r"DSXA_LITE_RULES_DIR: .*no \*\.yar files"):
        load_settings(DsxaLiteSettings)
