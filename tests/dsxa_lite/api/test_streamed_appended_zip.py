"""A large body scanned as it arrives (its size declared, its head no archive) is not kept, yet a
ZIP that ends it is walked as in a spooled body: zipfile, unzip and 7-Zip find such an archive
from its end record whatever comes before it (self-extractors, polyglots)."""

from __future__ import annotations

import io
import zipfile
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from .. import archive_samples as build
from ..dsxa_schema import check_answer
from ..samples import eicar, filler
from ..servers import Scanner, running_scanner

pytestmark = pytest.mark.integration

THRESHOLD = 64 * 1024  # bodies past it stream when their size is declared
EICAR_IN_ZIP = "eicar: EICAR-Test-File (in dropper/eicar.com)"
PNG = b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR" + bytes(13)


@pytest.fixture(scope="module")
def spool(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("streamed-zip-spool")


@pytest.fixture(scope="module")
def scanner(spool: Path, logs_dir: Path) -> Iterator[Scanner]:
    env = {"DSXA_LITE_SPOOL_DIR": str(spool), "DSXA_LITE_SPOOL_THRESHOLD_BYTES": str(THRESHOLD)}
    with running_scanner("dsxa-lite-streamed-zip", env, logs_dir) as running:
        yield running


def post(scanner: Scanner, data: bytes, *, declared: bool) -> dict[str, object]:
    """``declared``: with Content-Length (streamed); else chunked (spooled), for comparison."""
    content: bytes | Iterator[bytes] = data
    if not declared:
        content = iter([data[i : i + 256 * 1024] for i in range(0, len(data), 256 * 1024)])
    response = httpx.post(scanner.url + "/scan/binary/v2", content=content, timeout=60)
    assert response.status_code == 200, response.text
    answer: dict[str, object] = response.json()
    check_answer(answer)
    return answer


def absolute_offsets_zip(prefix: bytes, members: dict[str, bytes]) -> bytes:
    """An archive appended to ``prefix`` the way zipfile's append mode (and ``zip -A``) writes a
    self-extractor: member offsets counted from the start of the whole file."""
    out = io.BytesIO(prefix)
    out.seek(0, 2)
    with zipfile.ZipFile(out, "a", zipfile.ZIP_DEFLATED) as archive:
        for name, data in members.items():
            archive.writestr(name, data)
    return out.getvalue()


DROPPER = {"readme.txt": b"nothing here", "dropper/eicar.com": eicar()}
SAMPLES = {
    "png-then-zip": PNG + filler(1024 * 1024) + build.zip_of(DROPPER),
    "decoy-signature-first": PNG + b"PK\x03\x04" + filler(1024 * 1024) + build.zip_of(DROPPER),
    "signature-at-a-chunk-edge": PNG + filler(THRESHOLD - len(PNG) - 2) + build.zip_of(DROPPER),
    "absolute-offsets": absolute_offsets_zip(b"MZ" + filler(700_000), DROPPER),
}


@pytest.mark.parametrize("name", SAMPLES)
@pytest.mark.parametrize("declared", [True, False], ids=["streamed", "spooled"])
def test_a_zip_ending_a_large_plain_body_is_walked(scanner: Scanner, name: str, declared: bool) -> None:
    data = SAMPLES[name]
    assert zipfile.ZipFile(io.BytesIO(data)).read("dropper/eicar.com") == eicar()  # what unzip gets
    answer = post(scanner, data, declared=declared)
    assert (answer["verdict"], answer["verdict_details"]["reason"]) == ("Malicious", EICAR_IN_ZIP)  # type: ignore[index]
    assert answer["file_info"]["file_size_in_bytes"] == len(data)  # type: ignore[index]


def test_a_large_plain_body_without_a_zip_is_benign_and_nothing_stays_on_disk(
    scanner: Scanner, spool: Path
) -> None:
    for data in (
        filler(2 * 1024 * 1024),  # no local header: nothing kept at all
        PNG + filler(1024 * 1024) + b"PK\x03\x04" + filler(1024 * 1024),  # one, and no ZIP after it
    ):
        answer = post(scanner, data, declared=True)
        assert answer["verdict"] == "Benign"
    assert list(spool.iterdir()) == []
