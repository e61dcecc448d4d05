"""Archives over HTTP: ``scan_password``, the container fields of the answer, and bounded memory
while a scanner process walks bombs, a 10 GiB member and 10,000 members."""

from __future__ import annotations

import base64
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from .. import archive_samples as build
from ..dsxa_schema import check_answer
from ..samples import eicar, sha256
from ..servers import Scanner, running_scanner
from .test_large_files import RSS_LIMIT_BYTES, peak_rss_bytes

pytestmark = pytest.mark.integration

BINARY = "/scan/binary/v2"


@pytest.fixture(scope="module")
def archive_scanner(tmp_path_factory: pytest.TempPathFactory, logs_dir: Path) -> Iterator[Scanner]:
    """A scanner with default limits (the session one has small ones) and its own spool folder."""
    spool = tmp_path_factory.mktemp("archive-spool")
    with running_scanner("dsxa-lite-archives", {"DSXA_LITE_SPOOL_DIR": str(spool)}, logs_dir) as running:
        yield running


def post(scanner: Scanner, data: bytes, **headers: str) -> dict[str, object]:
    response = httpx.post(scanner.url + BINARY, content=data, headers=headers, timeout=60)
    assert response.status_code == 200, response.text
    answer: dict[str, object] = response.json()
    check_answer(answer)
    return answer


def test_scan_password_header_opens_an_aes_zip(archive_scanner: Scanner) -> None:
    data = build.aes_zip({"eicar.com": eicar()}, "s3cret")
    locked = post(archive_scanner, data)
    assert locked["verdict"] == "Not Scanned"
    opened = post(archive_scanner, data, scan_password="s3cret")
    assert opened["verdict"] == "Malicious"
    assert opened["verdict_details"] == {
        "event_description": "File identified as malicious",
        "reason": "eicar: EICAR-Test-File (in eicar.com)",
        "threat_type": "VIRUS",
    }
    assert opened["file_info"]["container_hash"] == sha256(data)  # type: ignore[index]
    assert opened["container_files_scanned"] == 1
    assert opened["container_files_scanned_size"] == len(eicar())


def test_x_content_type_base64_on_the_binary_route_is_decoded(archive_scanner: Scanner) -> None:
    data = build.zip_of({"eicar.com": eicar()})
    answer = post(archive_scanner, base64.b64encode(data), **{"X-Content-Type": "base64"})
    assert answer["verdict"] == "Malicious"
    assert answer["file_info"]["file_hash"] == sha256(data)  # type: ignore[index]


def test_rar_answers_unsupported_file_type(archive_scanner: Scanner) -> None:
    answer = post(archive_scanner, b"Rar!\x1a\x07\x01\x00" + bytes(200))
    assert answer["verdict"] == "Unsupported File Type"
    assert answer["verdict_details"] == {
        "event_description": "File type not supported",
        "reason": "RAR archives are not unpacked",
        "threat_type": None,
    }


@pytest.mark.slow
@pytest.mark.skipif(not Path("/proc/self/status").exists(), reason="needs Linux /proc")
def test_bombs_and_huge_archives_keep_rss_bounded(archive_scanner: Scanner) -> None:
    cases = [
        (build.bomb_42(), "Non Compliant"),
        (build.zeros_tar_gz(10 * 1024**3), "Non Compliant"),
        (build.many_members(10_000), "Benign"),
        (build.nested_zip(eicar(), "eicar.com", depth=3), "Malicious"),
    ]
    for data, verdict in cases:
        assert post(archive_scanner, data)["verdict"] == verdict
    assert archive_scanner.process.proc is not None
    peak = peak_rss_bytes(archive_scanner.process.proc.pid)
    assert peak < RSS_LIMIT_BYTES, f"peak RSS {peak / 1024**2:.0f} MiB"
