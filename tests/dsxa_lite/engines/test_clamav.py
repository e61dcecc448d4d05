"""ClamAV engine against a real clamd with a database the test writes (unix socket and TCP)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from dsxa_lite.engines import ScanInput
from dsxa_lite.engines.clamav import ClamavEngine, parse_address, threat_type_of
from tests.support.procs import ServiceProcess, base_env, free_port, uvicorn_argv

from ..clamd import GENERATED, GENERATED_SIGNATURE, Clamd, running_clamd
from ..dsxa_schema import check_answer
from ..samples import eicar, filler, sha256
from ..servers import running_scanner


def item(data: bytes) -> ScanInput:
    return ScanInput(sha256(data), len(data), data[:4096], "Text", data=data)


@pytest.mark.unit
@pytest.mark.parametrize(
    ("signature", "expected"),
    [
        ("Win.Ransomware.Locky-1", "RANSOMWARE"),
        ("Unix.Trojan.Backdoor-5", "BACKDOOR"),
        ("Win.Downloader.Agent-2", "DROPPER"),
        ("PUA.Win.Tool.Packed-3", "PUA"),
        ("Win.Spyware.Keylogger-4", "SPYWARE"),
        ("Win.Worm.Mydoom-6", "WORM"),
        ("Eicar-Signature", "VIRUS"),
        ("Win.Trojan.Agent-7", "VIRUS"),
    ],
)
def test_signature_names_map_to_dsxa_threat_types(signature: str, expected: str) -> None:
    assert threat_type_of(signature) == expected


@pytest.mark.unit
def test_addresses_are_parsed() -> None:
    assert parse_address("/run/clamd.sock") == ("unix", "/run/clamd.sock")
    assert parse_address("unix:/run/clamd.sock") == ("unix", "/run/clamd.sock")
    assert parse_address("clamav:3310") == ("tcp", ("clamav", 3310))
    with pytest.raises(ValueError):
        parse_address("clamav")


@pytest.fixture(scope="module")
def clamd(tmp_path_factory: pytest.TempPathFactory, logs_dir: Path) -> Iterator[Clamd]:
    with running_clamd(tmp_path_factory.mktemp("clamd"), logs_dir) as running:
        yield running


@pytest.mark.integration
@pytest.mark.parametrize("over", ["unix", "tcp"])
def test_clamd_finds_its_test_signatures(clamd: Clamd, over: str) -> None:
    engine = ClamavEngine(str(clamd.socket) if over == "unix" else clamd.tcp)
    assert engine.version().startswith("ClamAV ")
    hit = engine.scan(item(GENERATED))
    assert hit is not None and hit.name == f"{GENERATED_SIGNATURE}.UNOFFICIAL"
    assert hit.threat_type == "RANSOMWARE"
    eicar_hit = engine.scan(item(eicar()))
    assert eicar_hit is not None and eicar_hit.threat_type == "VIRUS"
    assert engine.scan(item(filler(3000))) is None


@pytest.mark.integration
def test_scanner_with_clamd_adds_its_verdicts(clamd: Clamd, logs_dir: Path) -> None:
    with running_scanner("dsxa-lite-clamd", {"DSXA_LITE_CLAMD": str(clamd.socket)}, logs_dir) as scanner:
        answer = httpx.post(scanner.url + "/scan/binary/v2", content=GENERATED).json()
        check_answer(answer)
        assert answer["verdict"] == "Malicious"
        assert answer["verdict_details"]["reason"] == f"clamav: {GENERATED_SIGNATURE}.UNOFFICIAL"
        assert answer["verdict_details"]["threat_type"] == "RANSOMWARE"
        assert "ClamAV" in answer["engine_version"]
        version = httpx.get(scanner.url + "/version").json()
        assert "clamav" in version["engines"] and "ClamAV" in version["engine_version"]
        assert httpx.post(scanner.url + "/scan/binary/v2", content=filler(2000)).json()["verdict"] == "Benign"


@pytest.mark.integration
def test_clamd_gone_fails_the_scan_as_retryable(tmp_path: Path, logs_dir: Path) -> None:
    with (
        running_clamd(tmp_path / "clamd", logs_dir) as clamd,
        running_scanner("dsxa-lite-clamd-gone", {"DSXA_LITE_CLAMD": clamd.tcp}, logs_dir) as scanner,
    ):
        clamd.process.stop()
        response = httpx.post(scanner.url + "/scan/binary/v2", content=filler(100))
        assert response.status_code == 500
        assert "clamd" in response.json()["verdict_details"]["reason"]


@pytest.mark.integration
def test_unreachable_clamd_stops_start_naming_the_variable(logs_dir: Path) -> None:
    port = free_port()
    env = base_env(DSXA_LITE_CLAMD=f"127.0.0.1:{free_port()}")
    process = ServiceProcess(
        f"dsxa-lite-no-clamd-{port}", uvicorn_argv("dsxa_lite.app:app", port), env, logs_dir
    )
    process.start()
    try:
        assert process.proc is not None and process.proc.wait(timeout=60) != 0
    finally:
        process.stop()
    assert "DSXA_LITE_CLAMD: cannot reach clamd" in process.log_tail(20)
