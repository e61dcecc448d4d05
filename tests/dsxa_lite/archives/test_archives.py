"""Archives through the scan service: each case built at run time gets its verdict and reason."""

from __future__ import annotations

import time
import zipfile

import pytest

from dsxa_lite.service import ScanService

from .. import archive_samples as build
from ..in_process import scan, service
from ..samples import MARKER, MARKER_RULE, eicar, filler, sha256

pytestmark = pytest.mark.unit

EICAR_REASON = "eicar: EICAR-Test-File"


@pytest.fixture(scope="module")
def scanner() -> ScanService:
    return service()


def test_eicar_deflated_in_a_zip_is_malicious_naming_the_member(scanner: ScanService) -> None:
    data = build.zip_of({"readme.txt": filler(500), "tools/eicar.com": eicar()})
    outcome = scan(scanner, data)
    assert (outcome.verdict, outcome.threat_type) == ("Malicious", "VIRUS")
    assert outcome.reason == f"{EICAR_REASON} (in tools/eicar.com)"
    assert outcome.file_type == "ZIP"
    assert outcome.container_hash == sha256(data) == outcome.sha256
    assert outcome.container_files_scanned == 2
    assert outcome.container_files_scanned_size == 500 + len(eicar())


@pytest.mark.parametrize(
    "compression", [zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED, zipfile.ZIP_BZIP2, zipfile.ZIP_LZMA]
)
def test_every_zip_compression_method_is_unpacked(scanner: ScanService, compression: int) -> None:
    outcome = scan(scanner, build.zip_of({"a.txt": filler(300), "eicar.com": eicar()}, compression))
    assert (outcome.verdict, outcome.reason) == ("Malicious", f"{EICAR_REASON} (in eicar.com)")


def test_malicious_member_ends_the_walk(scanner: ScanService) -> None:
    members = {"eicar.com": eicar(), **{f"f{n}.txt": filler(100, seed=n) for n in range(50)}}
    outcome = scan(scanner, build.zip_of(members))
    assert (outcome.verdict, outcome.container_files_scanned) == ("Malicious", 1)


def test_benign_zip_counts_every_member(scanner: ScanService) -> None:
    outcome = scan(scanner, build.zip_of({f"f{n}.txt": filler(100, seed=n) for n in range(5)}))
    assert (outcome.verdict, outcome.reason, outcome.threat_type) == ("Benign", "", None)
    assert (outcome.container_files_scanned, outcome.container_files_scanned_size) == (5, 500)


@pytest.mark.parametrize("mode", ["w", "w:gz", "w:bz2", "w:xz"])
def test_eicar_in_a_tar_is_found_whatever_the_compression(scanner: ScanService, mode: str) -> None:
    outcome = scan(scanner, build.tar_of({"docs/a.txt": filler(200), "docs/eicar.com": eicar()}, mode))
    assert outcome.verdict == "Malicious"
    assert outcome.reason == f"{EICAR_REASON} (in docs/eicar.com)"


@pytest.mark.parametrize(
    ("data", "member"),
    [
        (build.gzip_of(eicar()), "content"),
        (build.bzip2_of(eicar()), "content"),
        (build.xz_of(eicar()), "content"),
    ],
    ids=["gzip", "bzip2", "xz"],
)
def test_eicar_compressed_alone_is_found(scanner: ScanService, data: bytes, member: str) -> None:
    outcome = scan(scanner, data)
    assert (outcome.verdict, outcome.reason) == ("Malicious", f"{EICAR_REASON} (in {member})")


def test_yara_rule_sees_members_too(scanner: ScanService) -> None:
    outcome = scan(scanner, build.tar_of({"a/b/c.txt": filler(1000) + MARKER}))
    assert outcome.reason == f"yara: {MARKER_RULE} (in a/b/c.txt)"


def test_eicar_nested_three_deep_names_the_whole_path(scanner: ScanService) -> None:
    outcome = scan(scanner, build.nested_zip(eicar(), "eicar.com", depth=3))
    assert outcome.verdict == "Malicious"
    assert outcome.reason == f"{EICAR_REASON} (in level2.zip/level1.zip/eicar.com)"
    assert outcome.container_files_scanned == 3  # two inner zips and the file


def test_nesting_past_the_depth_limit_is_non_compliant() -> None:
    outcome = scan(service(archive_max_depth=2), build.nested_zip(eicar(), "eicar.com", depth=3))
    assert outcome.verdict == "Non Compliant"
    assert outcome.reason == "Archive Bomb: archives nested deeper than 2 levels (at level2.zip/level1.zip)"


def test_7z_is_unpacked(scanner: ScanService) -> None:
    outcome = scan(scanner, build.seven_zip({"clean.txt": filler(300), "x/eicar.com": eicar()}))
    assert (outcome.verdict, outcome.file_type) == ("Malicious", "7Z")
    assert outcome.reason == f"{EICAR_REASON} (in x/eicar.com)"


def test_aes_zip_with_its_password_is_scanned(scanner: ScanService) -> None:
    data = build.aes_zip({"eicar.com": eicar()}, "s3cret")
    outcome = scan(scanner, data, passwords=("s3cret",))
    assert (outcome.verdict, outcome.reason) == ("Malicious", f"{EICAR_REASON} (in eicar.com)")


def test_aes_zip_without_a_password_is_not_scanned_saying_why(scanner: ScanService) -> None:
    outcome = scan(scanner, build.aes_zip({"eicar.com": eicar()}, "s3cret"))
    assert outcome.verdict == "Not Scanned"
    assert outcome.reason.startswith("Encrypted archive member and no password")
    assert outcome.reason.endswith("(at eicar.com)")
    assert outcome.threat_type is None


def test_aes_zip_with_a_wrong_password_is_not_scanned(scanner: ScanService) -> None:
    outcome = scan(scanner, build.aes_zip({"eicar.com": eicar()}, "s3cret"), passwords=("guess",))
    assert outcome.verdict == "Not Scanned"
    assert outcome.reason.startswith("Encrypted archive member and none of the passwords opens it")


def test_configured_passwords_open_zipcrypto_archives() -> None:
    data = build.zipcrypto_zip("eicar.com", eicar(), "infected")
    assert scan(service(), data).verdict == "Not Scanned"
    outcome = scan(service(archive_passwords="wrong,infected"), data)
    assert (outcome.verdict, outcome.reason) == ("Malicious", f"{EICAR_REASON} (in eicar.com)")


def test_encrypted_7z_needs_its_password(scanner: ScanService) -> None:
    data = build.seven_zip({"eicar.com": eicar()}, password="s3cret")
    locked = scan(scanner, data)
    assert (locked.verdict, locked.reason.startswith("Encrypted archive member and no password")) == (
        "Not Scanned",
        True,
    )
    assert scan(scanner, data, passwords=("wrong", "s3cret")).verdict == "Malicious"
    assert scan(scanner, data, passwords=("wrong",)).reason.startswith("Encrypted archive member and none")


def test_malicious_member_wins_over_an_encrypted_one(scanner: ScanService) -> None:
    locked = build.aes_zip({"secret.txt": b"hidden"}, "pw")
    data = build.zip_of({"locked.zip": locked, "eicar.com": eicar()})
    assert scan(scanner, data).verdict == "Malicious"


def test_ooxml_document_without_macros_is_benign(scanner: ScanService) -> None:
    outcome = scan(scanner, build.docx_without_macros())
    assert (outcome.verdict, outcome.file_type) == ("Benign", "OOXML Word")
    assert outcome.container_files_scanned == 3


def test_42_zip_style_bomb_stops_at_the_ratio_limit(scanner: ScanService) -> None:
    data = build.bomb_42()
    started = time.monotonic()
    outcome = scan(scanner, data)
    assert time.monotonic() - started < 20
    assert outcome.verdict == "Non Compliant"
    assert outcome.reason.startswith("Archive Bomb: expansion ratio over 100 (at lib3-0.zip/lib2-0.zip/")
    assert outcome.reason.endswith("/0.bin)")


def test_10_gib_member_is_refused_from_its_declared_size(scanner: ScanService) -> None:
    started = time.monotonic()
    outcome = scan(scanner, build.zeros_tar_gz(10 * 1024**3))
    assert time.monotonic() - started < 5
    assert outcome.verdict == "Non Compliant"
    assert outcome.reason == f"Archive Bomb: more than {4 * 1024**3} bytes unpacked (at huge.bin)"


def test_10_gib_member_past_a_raised_size_limit_stops_at_the_ratio() -> None:
    started = time.monotonic()
    # the ratio is over the size of the file sent (~10 MB here): 20 stops it after ~200 MB
    scanner = service(archive_max_total_bytes=64 * 1024**3, archive_max_ratio=20)
    outcome = scan(scanner, build.zeros_tar_gz(10 * 1024**3))
    assert time.monotonic() - started < 10
    assert (outcome.verdict, outcome.reason) == (
        "Non Compliant",
        "Archive Bomb: expansion ratio over 20 (at huge.bin)",
    )


def test_zip_of_10000_members_is_scanned_whole(scanner: ScanService) -> None:
    outcome = scan(scanner, build.many_members(10_000))
    assert outcome.verdict == "Benign"
    assert outcome.container_files_scanned == 10_000


def test_member_count_limit_is_non_compliant() -> None:
    outcome = scan(service(archive_max_members=100), build.many_members(101))
    assert outcome.verdict == "Non Compliant"
    assert outcome.reason == "Archive Bomb: more than 100 members (at dir0/file100.txt)"


def test_time_limit_is_not_scanned() -> None:
    outcome = scan(service(archive_time_limit_s=0.05), build.many_members(10_000))
    assert outcome.verdict == "Not Scanned"
    assert outcome.reason.startswith("Archive scan time limit of 0.05 s reached (at dir")


def test_rar_is_an_unsupported_file_type(scanner: ScanService) -> None:
    outcome = scan(scanner, b"Rar!\x1a\x07\x01\x00" + filler(100))
    assert (outcome.verdict, outcome.file_type) == ("Unsupported File Type", "RAR")


def test_corrupt_zip_is_not_scanned(scanner: ScanService) -> None:
    outcome = scan(scanner, b"PK\x03\x04" + filler(200))
    assert outcome.verdict == "Not Scanned"
    assert outcome.reason.startswith("corrupt ZIP archive")


def test_archives_can_be_turned_off() -> None:
    outcome = scan(service(archives=False), build.zip_of({"eicar.com": eicar()}))
    assert (outcome.verdict, outcome.container_files_scanned) == ("Benign", 0)


def test_7z_members_arrive_in_bounded_chunks(scanner: ScanService, monkeypatch: pytest.MonkeyPatch) -> None:
    # py7zr's default hands a member over in chunks of up to 128 MB: memory must not follow
    from dsxa_lite.archives.sink import MemberSink

    sizes: list[int] = []
    write = MemberSink.write

    def recording(self: MemberSink, chunk: bytes) -> int:
        sizes.append(len(chunk))
        return write(self, chunk)

    monkeypatch.setattr(MemberSink, "write", recording)
    outcome = scan(scanner, build.seven_zip({"zeros.bin": bytes(8 * 1024 * 1024)}))
    assert (outcome.verdict, outcome.container_files_scanned_size) == ("Benign", 8 * 1024 * 1024)
    assert max(sizes) <= 1024 * 1024
