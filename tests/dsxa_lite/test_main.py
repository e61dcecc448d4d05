"""The one-shot command line: ``python -m dsxa_lite scan FILE...``."""

from __future__ import annotations

import json
from pathlib import Path

import anyio
import pytest

from dsxa_lite.__main__ import exposure_warning, scan_files
from dsxa_lite.settings import DsxaLiteSettings

from .samples import MARKER, MARKER_RULE, filler, sha256

pytestmark = pytest.mark.unit


def test_scan_prints_one_verdict_per_file_and_fails_on_malicious(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    clean, bad = tmp_path / "clean.txt", tmp_path / "bad.txt"
    clean.write_bytes(filler(3000))
    bad.write_bytes(filler(3000) + MARKER)
    settings = DsxaLiteSettings(spool_threshold_bytes=1024)  # the bad file goes through the spool
    status = anyio.run(scan_files, settings, [clean, bad])
    first, second = (json.loads(line) for line in capsys.readouterr().out.splitlines())
    assert status == 1
    assert (first["verdict"], first["file_info"]["file_hash"]) == ("Benign", sha256(filler(3000)))
    assert first["X-Custom-Metadata"] == f"file-loc:{clean}"
    assert second["verdict_details"]["reason"] == f"yara: {MARKER_RULE}"


def test_scan_of_benign_files_exits_zero(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    clean = tmp_path / "clean.txt"
    clean.write_bytes(b"hello")
    assert anyio.run(scan_files, DsxaLiteSettings(), [clean]) == 0
    assert json.loads(capsys.readouterr().out)["verdict"] == "Benign"


@pytest.mark.parametrize("host", ["127.0.0.1", "localhost", "::1", "127.0.0.5"])
def test_loopback_needs_no_warning(host: str) -> None:
    assert exposure_warning(host, has_token=False) is None


@pytest.mark.parametrize("host", ["0.0.0.0", "::", "10.1.2.3", "scanner.internal"])
def test_public_address_without_token_is_warned_about(host: str) -> None:
    warning = exposure_warning(host, has_token=False)
    assert warning is not None and host in warning and "DSXA_LITE_AUTH_TOKEN" in warning
    assert exposure_warning(host, has_token=True) is None
