"""Damaged archives never fail a scan: truncated or corrupted, each still gets a verdict."""

from __future__ import annotations

import random

import pytest

from dsxa_lite.body import ReceivedBody
from dsxa_lite.service import ScanService
from dsxa_lite.settings import DsxaLiteSettings

from .. import archive_samples as build
from ..samples import eicar, filler, sha256

pytestmark = pytest.mark.unit

MEMBERS = {"a.txt": filler(3000), "b/c.txt": filler(2000, seed=2), "eicar.com": eicar()}
ARCHIVES = {
    "zip": build.zip_of(MEMBERS),
    "aes-zip": build.aes_zip(MEMBERS, "pw"),
    "zipcrypto": build.zipcrypto_zip("eicar.com", eicar(), "pw"),
    "tar": build.tar_of(MEMBERS, "w"),
    "tar.gz": build.tar_of(MEMBERS, "w:gz"),
    "tar.bz2": build.tar_of(MEMBERS, "w:bz2"),
    "tar.xz": build.tar_of(MEMBERS, "w:xz"),
    "gz": build.gzip_of(filler(5000)),
    "7z": build.seven_zip(MEMBERS),
    "7z-encrypted": build.seven_zip(MEMBERS, password="pw"),
    "docx": build.docx_without_macros(),
}
FLIPS = 6
VERDICTS = {"Benign", "Malicious", "Not Scanned", "Non Compliant", "Unsupported File Type"}


def damaged(data: bytes, seed: int) -> list[bytes]:
    rng = random.Random(seed)
    cuts = [len(data) // 2, len(data) - 1, 40]
    versions = [data[:cut] for cut in cuts]
    for _ in range(FLIPS):
        flipped = bytearray(data)
        for _ in range(4):
            flipped[rng.randrange(len(flipped))] ^= 0xFF
        versions.append(bytes(flipped))
    return versions


@pytest.fixture(scope="module")
def scanner() -> ScanService:
    return ScanService(DsxaLiteSettings(archive_passwords=["pw"]))  # type: ignore[list-item]


@pytest.mark.parametrize("kind", sorted(ARCHIVES))
def test_damaged_archive_still_gets_a_verdict(scanner: ScanService, kind: str) -> None:
    for data in damaged(ARCHIVES[kind], seed=len(kind)):
        body = ReceivedBody(sha256(data), len(data), data[:4096], data=data)
        outcome = scanner.scan(body)  # raises ScanFailed (a 500) if an unpacker error escapes
        assert outcome.verdict in VERDICTS
