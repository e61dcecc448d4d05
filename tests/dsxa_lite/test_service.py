"""Scan service: engine order, verdicts, hash look-ups and the rule-set version."""

from __future__ import annotations

import dataclasses
import shutil
from pathlib import Path

import pytest

from dsxa_lite.body import ReceivedBody
from dsxa_lite.engines import Hit, ScanInput
from dsxa_lite.service import ScanFailed, ScanService, verdict_document
from dsxa_lite.settings import DEFAULT_RULES_DIR, DsxaLiteSettings
from shared.models import DsxaVerdict

from .samples import EICAR_SHA256, MARKER, eicar, filler, sha256

pytestmark = pytest.mark.unit


def service(**values: object) -> ScanService:
    return ScanService(DsxaLiteSettings.model_validate(values))


def body(data: bytes) -> ReceivedBody:
    return ReceivedBody(sha256(data), len(data), data[:4096], data=data)


def test_engines_run_eicar_then_blocklist_then_yara() -> None:
    assert [engine.name for engine in service().engines] == ["eicar", "blocklist", "yara"]


def test_first_engine_hit_wins() -> None:
    data = eicar()
    outcome = service(blocklist=[sha256(data)]).scan(body(data))
    assert outcome.reason == "eicar: EICAR-Test-File"


def test_blocklist_is_checked_before_yara() -> None:
    data = b"x " + MARKER
    outcome = service(blocklist=[sha256(data)]).scan(body(data))
    assert outcome.reason.startswith("blocklist: ")


def test_benign_outcome() -> None:
    data = filler(2000)
    outcome = service().scan(body(data))
    assert (outcome.verdict, outcome.event_description, outcome.reason) == (
        "Benign",
        "File identified as benign",
        "",
    )
    assert (outcome.size, outcome.sha256, outcome.file_type) == (2000, sha256(data), "Text")


def test_too_large_is_non_compliant_without_scanning() -> None:
    too_large = ReceivedBody(sha256(b"x"), 11, eicar(), too_large=True)
    outcome = service(max_file_size_bytes=10).scan(too_large)
    assert (outcome.verdict, outcome.reason) == ("Non Compliant", "File Size Too Large")
    assert "10 bytes" in outcome.event_description


def test_lookup_hash_is_malicious_when_listed_and_unknown_otherwise() -> None:
    bad = sha256(b"bad")
    scanner = service(blocklist=[bad])
    assert scanner.lookup_hash(bad.upper()).verdict == "Malicious"
    assert scanner.lookup_hash(EICAR_SHA256).reason == "eicar: EICAR-Test-File"
    assert scanner.lookup_hash(sha256(b"never seen")).verdict == "Unknown"
    assert scanner.lookup_hash(bad).threat_type == "VIRUS"
    with pytest.raises(ValueError):
        scanner.lookup_hash("d41d8cd98f00b204e9800998ecf8427e")


def test_rules_version_changes_with_rules_and_blocklist(tmp_path: Path) -> None:
    rules = tmp_path / "rules"
    shutil.copytree(DEFAULT_RULES_DIR, rules)
    base = service(rules_dir=rules).rules_version
    assert service(rules_dir=rules).rules_version == base
    assert service(rules_dir=rules, blocklist=[sha256(b"bad")]).rules_version != base
    (rules / "extra.yar").write_text('rule Extra { strings: $a = "extra-marker" condition: $a }')
    assert service(rules_dir=rules).rules_version != base


def test_verdict_document_is_a_dsxa_verdict() -> None:
    outcome = service().scan(body(b"x " + MARKER))
    document = verdict_document(outcome, 42, 3, "file-loc:a")
    parsed = DsxaVerdict.model_validate(document)
    assert parsed.verdict == "Malicious"
    assert parsed.verdict_details.threat_type == "VIRUS"
    assert parsed.x_custom_metadata == "file-loc:a"
    assert parsed.protected_entity == 3
    assert len(parsed.scan_guid) == 32
    assert verdict_document(outcome, 42)["scan_guid"] != parsed.scan_guid


class BrokenEngine:
    name = "broken"

    def scan(self, item: ScanInput) -> Hit | None:
        raise RuntimeError("engine bug")


def test_engine_failure_is_a_scan_failed_without_the_original_traceback() -> None:
    scanner = service()
    # the optional engine slot (clamd's) runs last: a broken engine there fails the scan
    scanner.ruleset = dataclasses.replace(scanner.ruleset, clamav=BrokenEngine())  # type: ignore[arg-type]
    with pytest.raises(ScanFailed, match="scan failed: RuntimeError") as raised:
        scanner.scan(body(b"anything"))
    # nothing links back to the frames (and the thread's yara_x.Scanner) of the failure
    assert raised.value.__context__ is None and raised.value.__cause__ is None


def test_a_worker_that_fails_to_start_gives_its_streaming_slot_back(monkeypatch: pytest.MonkeyPatch) -> None:
    """A YARA worker that cannot start for a reason other than the platform's (an OSError turns
    streaming in-process) fails that request only: its slot is given back, so later bodies still
    stream (each failure used to keep a slot, and after ``large_scan_concurrency`` of them nothing
    streamed again)."""
    scanner = service(large_scan_concurrency=1)
    head = filler(4096)

    def cannot_start(*_: object, **__: object) -> None:
        raise RuntimeError("spawn failed")

    monkeypatch.setattr("dsxa_lite.yara_worker.YaraWorker.__init__", cannot_start)
    for _ in range(3):
        with pytest.raises(RuntimeError, match="spawn failed"):
            scanner.stream_scan(head, 64 << 20)
    monkeypatch.undo()
    try:
        scan = scanner.stream_scan(head, 64 << 20)
        assert scan is not None
        try:
            assert scanner.stream_scan(head, 64 << 20) is None  # the one slot is this scan's
        finally:
            scan.close()
        again = scanner.stream_scan(head, 64 << 20)
        assert again is not None
        again.close()
    finally:
        scanner.close()  # its idle YARA worker
