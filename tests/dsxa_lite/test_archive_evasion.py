"""Archives that common tools unpack must not pass as Benign: a ZIP with bytes in front, an old
V7 tar, tar members of an unknown type, damaged members, ZipCrypto's false password matches,
formats recognised but not unpacked, listings too large to parse, a ZIP appended to another
archive, a tar past an invalid header, tar headers that only cost, a RAR or cabinet in a program,
and 7z entries py7zr skips (each through the real ScanService, samples built at run time)."""

from __future__ import annotations

import bz2
import gzip
import io
import lzma
import stat
import struct
import tarfile
import tempfile
import zipfile
import zlib

import py7zr
import py7zr.archiveinfo
import pytest
import pyzipper

from dsxa_lite.archives import formats
from dsxa_lite.archives.walker import UNSUPPORTED_CONTAINERS
from dsxa_lite.body import ReceivedBody
from dsxa_lite.filetype import detect_file_type
from dsxa_lite.service import Outcome, ScanService

from . import archive_samples as build
from .in_process import scan, service
from .samples import eicar, filler, sha256

pytestmark = pytest.mark.unit

EICAR_REASON = "eicar: EICAR-Test-File"


@pytest.fixture(scope="module")
def scanner() -> ScanService:
    return service()


def png_header() -> bytes:
    return b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR" + bytes(13)


# --- 1. a ZIP with bytes in front (self-extractors, polyglots) ------------------------------------


def test_zip_after_one_newline_is_unpacked(scanner: ScanService) -> None:
    data = b"\n" + build.zip_of({"eicar.com": eicar()})
    assert detect_file_type(data[:4096]) == "ZIP"
    outcome = scan(scanner, data)
    assert (outcome.verdict, outcome.reason) == ("Malicious", f"{EICAR_REASON} (in eicar.com)")


def test_zip_after_a_long_prefix_inside_an_archive_is_unpacked(scanner: ScanService) -> None:
    sfx = filler(100_000) + build.zip_of({"dropper/eicar.com": eicar()})
    outcome = scan(scanner, build.zip_of({"setup.exe": sfx}))
    assert (outcome.verdict, outcome.reason) == (
        "Malicious",
        f"{EICAR_REASON} (in setup.exe/dropper/eicar.com)",
    )


def test_zip64_with_a_prefix_inside_an_archive_is_unpacked(scanner: ScanService) -> None:
    inner = io.BytesIO()
    with (
        zipfile.ZipFile(inner, "w", allowZip64=True) as archive,
        archive.open("eicar.com", "w", force_zip64=True) as member,
    ):
        member.write(eicar())
    outcome = scan(scanner, build.zip_of({"a.bin": png_header() + filler(9000) + inner.getvalue()}))
    assert outcome.verdict == "Malicious"


def test_prefixed_zip_found_from_its_end_record_in_a_spooled_body() -> None:
    from dsxa_lite.archives import container_type

    data = png_header() + filler(200_000) + build.zip_of({"eicar.com": eicar()})
    with tempfile.TemporaryFile() as spool:
        spool.write(data)
        body = ReceivedBody(sha256(data), len(data), data[:4096], spool=spool)
        assert detect_file_type(body.head) == "PNG"
        assert container_type(body, "PNG") == "ZIP"
    in_memory = ReceivedBody(sha256(data), len(data), data[:4096], data=data)
    assert container_type(in_memory, "PNG") == "ZIP"
    plain = filler(200_000)
    assert container_type(ReceivedBody(sha256(plain), len(plain), plain[:4096], data=plain), "Text") is None


def test_spooled_member_with_a_prefixed_zip_is_unpacked() -> None:
    # a member past the spool threshold is read back from its temp file
    sfx = filler(300_000) + build.zip_of({"eicar.com": eicar()})
    outcome = scan(service(spool_threshold_bytes=64 * 1024), build.zip_of({"setup.exe": sfx}))
    assert (outcome.verdict, outcome.reason) == ("Malicious", f"{EICAR_REASON} (in setup.exe/eicar.com)")


@pytest.mark.parametrize("prefix", [png_header() + filler(300), png_header() + filler(100_000)])
def test_zip_appended_to_another_file_is_unpacked(scanner: ScanService, prefix: bytes) -> None:
    outcome = scan(scanner, prefix + build.zip_of({"eicar.com": eicar()}, zipfile.ZIP_STORED))
    assert (outcome.verdict, outcome.file_type) == ("Malicious", "PNG")  # still named after its head


@pytest.mark.parametrize(
    "data",
    [
        filler(5000) + b"PK\x05\x06" + bytes(18),  # an end record pointing at no directory
        png_header() + b"PK\x05\x06" + b"\xff" * 18,
        b"\n" + b"PK\x05\x06" + bytes(18),  # an empty zip
    ],
)
def test_stray_end_record_bytes_do_not_make_a_file_an_archive(scanner: ScanService, data: bytes) -> None:
    outcome = scan(scanner, data)
    assert outcome.verdict == "Benign"
    assert scan(scanner, build.zip_of({"x.bin": data})).verdict == "Benign"


def pe_stub(size: int) -> bytes:
    """The start of a Windows executable (DOS header, PE signature), as a self-extractor's stub begins."""
    head = b"MZ\x90\x00\x03" + bytes(59) + b"PE\x00\x00"
    return head + filler(size - len(head))


@pytest.mark.parametrize("stub", [200_000, 3_000_000])
def test_a_7z_self_extractor_is_unpacked(scanner: ScanService, stub: int) -> None:
    """A 7-Zip self-extractor is a PE stub with a 7z archive after it: 7-Zip (and the stub) open
    it; dsxa_lite scanned it as a plain PE, so what its archive held was Benign."""
    data = pe_stub(stub) + build.seven_zip({"payload/eicar.com": eicar()})
    outcome = scan(scanner, data)
    assert (outcome.verdict, outcome.reason) == ("Malicious", f"{EICAR_REASON} (in payload/eicar.com)")
    assert outcome.file_type == detect_file_type(data[:4096])  # still named after its head


def test_a_7z_self_extractor_spooled_and_in_an_archive_is_unpacked() -> None:
    from dsxa_lite.archives import container_type

    data = pe_stub(300_000) + build.seven_zip({"eicar.com": eicar()})
    with tempfile.TemporaryFile() as spool:
        spool.write(data)
        body = ReceivedBody(sha256(data), len(data), data[:4096], spool=spool)
        assert container_type(body, "EXE") == formats.SEVEN_ZIP_INSIDE
    png = png_header() + data
    with tempfile.TemporaryFile() as spool:
        spool.write(png)
        body = ReceivedBody(sha256(png), len(png), png[:4096], spool=spool)
        assert container_type(body, "PNG") is None  # only a program's body is searched (its cost)
    outcome = scan(service(spool_threshold_bytes=64 * 1024), build.zip_of({"setup.exe": data}))
    assert (outcome.verdict, outcome.reason) == ("Malicious", f"{EICAR_REASON} (in setup.exe/eicar.com)")


def test_7z_signature_bytes_alone_do_not_make_a_file_an_archive(scanner: ScanService) -> None:
    archive = build.seven_zip({"a.txt": b"hello"})
    damaged = archive[:8] + bytes([archive[8] ^ 1]) + archive[9:]  # the start header's CRC fails
    truncated = archive[:-1]  # its header would lie past the end of the body
    for data in (
        filler(5000) + b"7z\xbc\xaf\x27\x1c" + bytes(26),
        pe_stub(1000) + damaged,
        pe_stub(1000) + truncated,
    ):
        outcome = scan(scanner, data)
        assert (outcome.verdict, outcome.reason) == ("Benign", ""), outcome.reason


# --- 2. tar without the ustar magic (V7), and tar names that look like other types -------------


def v7_tar(members: dict[str, bytes]) -> bytes:
    """An old-style (V7) tar: no ``ustar`` magic, only the header checksum vouches for it."""
    out = bytearray()
    for name, data in members.items():
        header = bytearray(512)
        header[0 : len(name)] = name.encode()
        header[100:108] = b"0000644\0"
        header[108:116] = b"0000000\0"
        header[116:124] = b"0000000\0"
        header[124:136] = b"%011o\0" % len(data)
        header[136:148] = b"00000000000\0"
        header[156:157] = b"0"
        header[148:156] = b" " * 8
        header[148:156] = b"%06o\0 " % sum(header)
        out += header + data + bytes(-len(data) % 512)
    return bytes(out + bytes(1024))


def test_v7_tar_is_detected_and_unpacked(scanner: ScanService) -> None:
    data = v7_tar({"readme.txt": filler(700), "eicar.com": eicar()})
    with tarfile.open(fileobj=io.BytesIO(data)) as archive:
        assert archive.getnames() == ["readme.txt", "eicar.com"]
    assert detect_file_type(data[:4096]) == "TAR"
    outcome = scan(scanner, data)
    assert (outcome.verdict, outcome.reason) == ("Malicious", f"{EICAR_REASON} (in eicar.com)")


@pytest.mark.parametrize("compress", [gzip.compress, bz2.compress, lzma.compress])
def test_compressed_v7_tar_is_walked_as_a_tar(scanner: ScanService, compress: object) -> None:
    data = compress(v7_tar({"eicar.com": eicar()}))  # type: ignore[operator]
    outcome = scan(scanner, data)
    assert (outcome.verdict, outcome.reason) == ("Malicious", f"{EICAR_REASON} (in eicar.com)")


@pytest.mark.parametrize(
    "name", ["%PDF-1.7 notes.txt", "{\\rtf1 notes", "GIF89a.gif", "PK\x03\x04x", "BZh91"]
)
def test_tar_whose_first_name_looks_like_another_type_is_unpacked(scanner: ScanService, name: str) -> None:
    data = build.tar_of({name: filler(100), "eicar.com": eicar()}, "w")
    assert detect_file_type(data[:4096]) == "TAR"
    assert scan(scanner, data).verdict == "Malicious"


def test_header_checksum_alone_does_not_make_a_tar() -> None:
    block = bytearray(filler(1024))
    block[148:156] = b"0000000 "  # octal, but not the sum of the block
    assert detect_file_type(bytes(block)) == "Text"
    assert detect_file_type(bytes(600)) != "TAR"  # the end-of-archive block is no tar on its own


# --- 3. tar members of a type GNU tar extracts as a regular file ------------------------------


def tar_with_type(flag: bytes, data: bytes) -> bytes:
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w", format=tarfile.USTAR_FORMAT) as archive:
        info = tarfile.TarInfo("eicar.com")
        info.size = len(data)
        archive.addfile(info, io.BytesIO(data))
    raw = bytearray(out.getvalue())
    raw[156:157] = flag
    raw[148:156] = b" " * 8
    raw[148:156] = b"%06o\0 " % sum(raw[:512])
    return bytes(raw)


@pytest.mark.parametrize("flag", [b"0", b"\0", b"7", b"Z", b"E", b"9"])
def test_tar_member_of_an_unknown_type_is_scanned(scanner: ScanService, flag: bytes) -> None:
    outcome = scan(scanner, tar_with_type(flag, eicar()))
    assert (outcome.verdict, outcome.reason) == ("Malicious", f"{EICAR_REASON} (in eicar.com)")


def test_tar_member_of_an_unknown_type_in_a_tar_gz_is_scanned(scanner: ScanService) -> None:
    outcome = scan(scanner, gzip.compress(tar_with_type(b"Z", eicar())))
    assert outcome.verdict == "Malicious"


# --- 4. damaged members still extracted by common tools, and ZipCrypto false matches -----------


def zip_with_bad_crc(data: bytes, compression: int) -> bytes:
    raw = build.zip_of({"eicar.com": data}, compression)
    good = struct.pack("<I", zlib.crc32(data))
    return raw.replace(good, struct.pack("<I", zlib.crc32(data) ^ 1))


@pytest.mark.parametrize("compression", [zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED])
def test_member_with_a_bad_crc_is_still_scanned(scanner: ScanService, compression: int) -> None:
    outcome = scan(scanner, zip_with_bad_crc(eicar(), compression))
    assert (outcome.verdict, outcome.reason) == ("Malicious", f"{EICAR_REASON} (in eicar.com)")


def test_benign_member_with_a_bad_crc_is_still_not_scanned(scanner: ScanService) -> None:
    outcome = scan(scanner, zip_with_bad_crc(filler(3000), zipfile.ZIP_DEFLATED))
    assert outcome.verdict == "Not Scanned"
    assert "CRC" in outcome.reason
    assert outcome.container_files_scanned == 1


def test_gzip_with_trailing_garbage_is_still_scanned(scanner: ScanService) -> None:
    outcome = scan(scanner, gzip.compress(eicar()) + b"garbage!")
    assert outcome.verdict == "Malicious"
    outcome = scan(scanner, gzip.compress(filler(3000)) + b"garbage!")
    assert outcome.verdict == "Not Scanned"


def wrong_password_passing_the_check(data: bytes) -> str:
    archive = pyzipper.AESZipFile(io.BytesIO(data))
    info = archive.infolist()[0]
    for n in range(20_000):
        candidate = f"pw{n}"
        try:
            archive.open(info, pwd=candidate.encode()).close()
        except RuntimeError:
            continue
        return candidate
    raise AssertionError("no false match found")


def test_zipcrypto_password_that_only_passes_the_check_byte_is_not_the_last_tried() -> None:
    data = build.zipcrypto_zip("eicar.com", eicar(), "infected")
    wrong = wrong_password_passing_the_check(data)
    scanner = service(archive_passwords=f"{wrong},infected")
    outcome = scan(scanner, data)
    assert (outcome.verdict, outcome.reason) == ("Malicious", f"{EICAR_REASON} (in eicar.com)")
    # the request's password first, the configured ones next
    outcome = scan(service(archive_passwords="infected"), data, (wrong,))
    assert outcome.verdict == "Malicious"


def test_zipcrypto_with_only_a_false_match_is_not_scanned() -> None:
    data = build.zipcrypto_zip("eicar.com", eicar(), "infected")
    wrong = wrong_password_passing_the_check(data)
    outcome = scan(service(archive_passwords=wrong), data)
    assert outcome.verdict == "Not Scanned"


# --- 5. formats recognised but not unpacked; LZMA-alone unpacked --------------------------------


@pytest.mark.parametrize(
    ("head", "kind"),
    [
        (b"(\xb5/\xfd\x24\x44\x21\x02", "ZST"),
        (b'\x04"M\x18\x64\x40\xa7', "LZ4"),
        (b"MSCF\0\0\0\0", "CAB"),
        (b"`\xea\x2a\x00", "ARJ"),
        (b"\x1f\x9d\x90", "TAR.Z"),
        (b"070701", "CPIO"),
    ],
)
def test_recognised_but_unopened_formats_are_unsupported(
    scanner: ScanService, head: bytes, kind: str
) -> None:
    data = head + bytes(200) + filler(300)
    assert detect_file_type(data) == kind
    assert kind in UNSUPPORTED_CONTAINERS
    outcome = scan(scanner, data)
    assert (outcome.verdict, outcome.file_type) == ("Unsupported File Type", kind)
    nested = scan(scanner, build.zip_of({"x.bin": data}))
    assert nested.verdict == "Unsupported File Type"
    assert nested.reason == f"{kind} archives are not unpacked (at x.bin)"


def test_rar_and_other_unsupported_formats_agree(scanner: ScanService) -> None:
    rar = scan(scanner, b"Rar!\x1a\x07\x01\x00" + filler(100))
    zst = scan(scanner, b"(\xb5/\xfd\x24\x44\x21\x02" + filler(100))
    assert rar.verdict == zst.verdict == "Unsupported File Type"


def test_lzma_alone_is_unpacked(scanner: ScanService) -> None:
    data = lzma.compress(eicar(), format=lzma.FORMAT_ALONE)
    assert detect_file_type(data) == "LZMA"
    outcome = scan(scanner, data)
    assert (outcome.verdict, outcome.reason) == ("Malicious", f"{EICAR_REASON} (in content)")
    wrapped = lzma.compress(build.zip_of({"e.com": eicar()}), format=lzma.FORMAT_ALONE)
    assert scan(scanner, wrapped).verdict == "Malicious"
    benign = scan(scanner, lzma.compress(filler(5000), format=lzma.FORMAT_ALONE))
    assert (benign.verdict, benign.container_files_scanned) == ("Benign", 1)


def test_lzma_alone_tar_is_walked_as_a_tar(scanner: ScanService) -> None:
    data = lzma.compress(build.tar_of({"a/eicar.com": eicar()}, "w"), format=lzma.FORMAT_ALONE)
    assert scan(scanner, data).reason == f"{EICAR_REASON} (in a/eicar.com)"


# --- 6. listings refused before they are parsed --------------------------------------------------


def repeated_directory(count: int, *, zip64: bool, declared: int | None = None) -> bytes:
    """A zip whose central directory lists one tiny stored member ``count`` times."""
    data = b"x"
    crc = zlib.crc32(data)
    name = b"a"
    local = struct.pack("<IHHHHHIIIHH", 0x04034B50, 20, 0, 0, 0, 0, crc, 1, 1, 1, 0) + name + data
    entry = (
        struct.pack("<IHHHHHHIIIHHHHHII", 0x02014B50, 20, 20, 0, 0, 0, 0, crc, 1, 1, 1, 0, 0, 0, 0, 0, 0)
        + name
    )
    directory = entry * count
    listed = count if declared is None else declared
    if not zip64:
        end = struct.pack("<IHHHHIIH", 0x06054B50, 0, 0, listed, listed, len(directory), len(local), 0)
        return local + directory + end
    record = struct.pack(
        "<IQHHIIQQQQ", 0x06064B50, 44, 45, 45, 0, 0, listed, listed, len(directory), len(local)
    )
    locator = struct.pack("<IIQI", 0x07064B50, 0, len(local) + len(directory), 1)
    end = struct.pack("<IHHHHIIH", 0x06054B50, 0, 0, 0xFFFF, 0xFFFF, 0xFFFFFFFF, 0xFFFFFFFF, 0)
    return local + directory + record + locator + end


@pytest.mark.parametrize(
    ("zip64", "declared"),
    [(False, None), (True, None), (False, 1), (True, 1)],
    ids=["zip", "zip64", "lying", "lying64"],
)
def test_zip_listing_more_members_than_the_limit_is_refused_before_it_is_parsed(
    monkeypatch: pytest.MonkeyPatch, zip64: bool, declared: int | None
) -> None:
    opened: list[object] = []
    real = formats.pyzipper.AESZipFile

    def recording(*args: object, **kwargs: object) -> object:
        opened.append(args)
        return real(*args, **kwargs)

    monkeypatch.setattr(formats.pyzipper, "AESZipFile", recording)
    data = repeated_directory(101, zip64=zip64, declared=declared)
    assert len(zipfile.ZipFile(io.BytesIO(data)).infolist()) == 101
    outcome = scan(service(archive_max_members=100), data)
    assert outcome.verdict == "Non Compliant"
    assert outcome.reason == "Archive Bomb: more than 100 members (at a)"
    assert opened == []
    # within the limit it opens as before
    assert scan(service(archive_max_members=101), data).verdict == "Benign"


def test_nested_zip_listing_past_the_members_left_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    data = build.zip_of({"one.txt": b"1", "two.txt": b"2", "inner.zip": repeated_directory(98, zip64=False)})
    outcome = scan(service(archive_max_members=100), data)
    assert outcome.verdict == "Non Compliant"
    assert outcome.reason == "Archive Bomb: more than 100 members (at inner.zip/a)"


def empty_files_7z(count: int) -> bytes:
    out = io.BytesIO()
    with py7zr.SevenZipFile(out, "w") as archive:
        for n in range(count):
            archive.writestr(b"", f"{n:x}")
    return out.getvalue()


def test_7z_header_listing_more_files_than_the_limit_is_refused_before_it_is_parsed(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    names_read: list[int] = []
    real = py7zr.archiveinfo.FilesInfo._read_name

    def recording(self: object, buffer: object) -> None:
        names_read.append(1)
        real(self, buffer)  # type: ignore[arg-type]

    monkeypatch.setattr(py7zr.archiveinfo.FilesInfo, "_read_name", recording)
    data = empty_files_7z(101)
    outcome = scan(service(archive_max_members=100), data)
    assert (outcome.verdict, outcome.reason) == (
        "Non Compliant",
        "Archive Bomb: more than 100 members (at the archive)",
    )
    assert names_read == []
    nested = scan(service(archive_max_members=100), build.zip_of({"many.7z": data}))
    assert nested.reason == "Archive Bomb: more than 100 members (at many.7z)"
    assert scan(service(archive_max_members=101), data).verdict == "Benign"


# --- 7. an archive after another: a ZIP appended to a tar, 7z or compressed stream -------------


@pytest.mark.parametrize(
    ("head", "kind"),
    [
        (build.tar_of({"a.txt": b"hello"}, "w"), "TAR"),
        (build.tar_of({"a.txt": b"hello"}, "w:gz"), "GZIP"),
        (build.tar_of({"a.txt": b"hello"}, "w:bz2"), "BZIP2"),
        (build.tar_of({"a.txt": b"hello"}, "w:xz"), "XZ"),
        (lzma.compress(build.tar_of({"a.txt": b"hello"}, "w"), format=lzma.FORMAT_ALONE), "LZMA"),
        (build.seven_zip({"a.txt": b"hello"}), "7Z"),
        (gzip.compress(filler(3000)), "GZIP"),
    ],
    ids=["tar", "tar.gz", "tar.bz2", "tar.xz", "tar.lzma", "7z", "gz"],
)
def test_zip_appended_to_another_archive_is_unpacked(scanner: ScanService, head: bytes, kind: str) -> None:
    """zipfile and unzip open a ZIP from its end record whatever precedes it: a tar, 7z or
    compressed stream recognised by its head hid the ZIP after it (only non-archive heads were
    looked at for one), so its malware was Benign."""
    data = head + build.zip_of({"eicar.com": eicar()})
    with zipfile.ZipFile(io.BytesIO(data)) as archive:
        assert archive.namelist() == ["eicar.com"]
    outcome = scan(scanner, data)
    assert (outcome.verdict, outcome.reason) == ("Malicious", f"{EICAR_REASON} (in eicar.com)")
    assert outcome.file_type == kind  # still named after its head
    nested = scan(scanner, build.zip_of({"bundle.bin": data}))
    assert nested.reason == f"{EICAR_REASON} (in bundle.bin/eicar.com)"


def test_7z_in_a_program_that_a_zip_ends_is_unpacked(scanner: ScanService) -> None:
    """A program with both a 7z after its stub and a ZIP at its end: the 7-Zip stub extracts the
    7z, unzip the ZIP; only the ZIP was walked."""
    data = pe_stub(100_000) + build.seven_zip({"eicar.com": eicar()}) + build.zip_of({"readme.txt": b"hi"})
    outcome = scan(scanner, data)
    assert (outcome.verdict, outcome.reason) == ("Malicious", f"{EICAR_REASON} (in eicar.com)")


# --- 8. tar headers: skipped like GNU tar, counted, bounded --------------------------------------


def test_tar_walk_skips_an_invalid_header_as_gnu_tar_does(scanner: ScanService) -> None:
    """tarfile's stream mode ended the walk at the first invalid header after a member, Benign;
    GNU tar says "Skipping to next header" and extracts what follows."""
    junk = b"\xff" * 512
    data = gzip.compress(
        build.tar_of({"a.txt": b"hello"}, "w") + junk + build.tar_of({"eicar.com": eicar()}, "w")
    )
    outcome = scan(scanner, data)
    assert (outcome.verdict, outcome.reason) == ("Malicious", f"{EICAR_REASON} (in eicar.com)")
    # headers straight after the junk (no end-of-archive blocks), and an uncompressed tar
    raw = build.tar_blocks({"a.txt": b"hello"}) + junk + build.tar_of({"x/eicar.com": eicar()}, "w")
    for sample in (raw, gzip.compress(raw)):
        outcome = scan(scanner, sample)
        assert (outcome.verdict, outcome.reason) == ("Malicious", f"{EICAR_REASON} (in x/eicar.com)")


def test_tar_with_an_invalid_header_is_not_scanned_when_nothing_is_found(scanner: ScanService) -> None:
    data = gzip.compress(
        build.tar_blocks({"a.txt": b"hello"}) + b"\xff" * 512 + build.tar_of({"b.txt": b"b"}, "w")
    )
    outcome = scan(scanner, data)
    assert outcome.verdict == "Not Scanned"
    assert outcome.reason == "corrupt TAR archive: 512 bytes of invalid headers skipped (at the archive)"
    assert outcome.container_files_scanned == 2  # what follows the junk was scanned too


def test_tars_one_after_another_are_all_scanned(scanner: ScanService) -> None:
    # as `tar --ignore-zeros` reads them: the first one's end-of-archive blocks do not end the walk
    data = build.tar_of({"a.txt": b"hello"}, "w") + build.tar_of({"eicar.com": eicar()}, "w")
    assert scan(scanner, data).verdict == "Malicious"
    assert scan(scanner, build.tar_of({"a.txt": b"a"}, "w") * 2).verdict == "Benign"


def test_tar_of_directory_headers_only_reaches_a_limit() -> None:
    """A 15 KB .tar.xz of 200,001 directory headers took seconds and 83 MiB and was Benign:
    directories were neither counted as members nor their headers as bytes."""
    data = lzma.compress(build.tar_headers(200_001), preset=0)
    assert len(data) < 20_000
    outcome = scan(service(archive_max_members=100_000), data)
    assert outcome.verdict == "Non Compliant"
    assert outcome.reason.startswith("Archive Bomb: ")


@pytest.mark.parametrize(
    "kind", [tarfile.DIRTYPE, tarfile.SYMTYPE, tarfile.LNKTYPE, tarfile.CHRTYPE, tarfile.FIFOTYPE]
)
def test_every_tar_header_counts_as_a_member(kind: bytes) -> None:
    data = build.tar_headers(101, kind)
    outcome = scan(service(archive_max_members=100), data)
    assert (outcome.verdict, outcome.reason) == (
        "Non Compliant",
        "Archive Bomb: more than 100 members (at d)",
    )
    assert scan(service(archive_max_members=101), data).verdict == "Benign"


def test_tar_headers_count_as_unpacked_bytes() -> None:
    data = gzip.compress(build.tar_headers(3000))  # 1.5 MB of headers
    outcome = scan(service(archive_max_total_bytes=1024 * 1024), data)
    assert (outcome.verdict, outcome.reason) == (
        "Non Compliant",
        "Archive Bomb: more than 1048576 bytes unpacked (at d)",
    )
    assert scan(service(archive_max_total_bytes=2 * 1024 * 1024), data).verdict == "Benign"


def test_tar_headers_are_not_kept_as_the_walk_goes() -> None:
    scanner = service()
    scan(scanner, lzma.compress(build.tar_headers(10)))  # imports and first-use caches
    outcome, peak = traced_peak(scanner, lzma.compress(build.tar_headers(20_000), preset=0))
    assert outcome.verdict == "Benign"
    assert peak < 3 * 1024 * 1024, peak  # tarfile kept every header: ~17 MiB


def long_name_tar(name_bytes: int, format: int, data: bytes = b"hello") -> bytes:
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w", format=format) as archive:
        info = tarfile.TarInfo("n" * name_bytes)
        info.size = len(data)
        archive.addfile(info, io.BytesIO(data))
    return out.getvalue()


def traced_peak(scanner: ScanService, data: bytes) -> tuple[Outcome, int]:
    """The outcome of scanning ``data`` and the peak of the memory Python allocated meanwhile."""
    import tracemalloc

    tracemalloc.start()
    try:
        outcome = scan(scanner, data)
        return outcome, tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


@pytest.mark.parametrize("format", [tarfile.GNU_FORMAT, tarfile.PAX_FORMAT], ids=["gnu", "pax"])
def test_tar_extended_header_over_the_cap_is_refused_before_it_is_read(format: int) -> None:
    """tarfile reads a GNU long name or a pax header whole: a 10 KB .tar.xz named its member
    with 64 MiB. One over 1 MiB is refused before it is read."""
    scanner = service()
    data = lzma.compress(long_name_tar(8 * 1024 * 1024, format), preset=0)
    outcome, peak = traced_peak(scanner, data)
    assert (outcome.verdict, outcome.reason) == (
        "Non Compliant",
        f"Archive Bomb: tar extended header over {1024 * 1024} bytes (at the archive)",
    )
    assert peak < 4 * 1024 * 1024, peak  # the name was read and decoded: over 16 MiB
    # a long name under the cap is read as before
    assert scan(scanner, lzma.compress(long_name_tar(300, format, eicar()))).verdict == "Malicious"


def test_long_chain_of_pax_headers_is_not_a_failed_scan(scanner: ScanService) -> None:
    """tarfile reads pax headers in a row recursively: 3,000 exhausted the stack and the scan
    failed (a 500)."""
    pax = tarfile.TarInfo("x")
    pax.pax_headers = {"comment": "c"}
    chain = pax.tobuf(format=tarfile.PAX_FORMAT)[:1024] * 3000  # pax header and its records
    data = chain + build.tar_of({"a.txt": b"hello"}, "w")
    outcome = scan(scanner, data)
    assert outcome.verdict == "Not Scanned"
    assert outcome.reason.startswith("corrupt TAR archive: more than ")


# --- 9. a RAR or cabinet in a program (WinRAR and IExpress self-extractors) -------------------


@pytest.mark.parametrize(
    ("archive", "kind"),
    [(build.rar5_start(), "RAR"), (build.rar4_start(), "RAR"), (build.cabinet("setup.exe", eicar()), "CAB")],
    ids=["rar5", "rar4", "cab"],
)
def test_rar_or_cab_in_a_program_is_unsupported(scanner: ScanService, archive: bytes, kind: str) -> None:
    """A program was searched for a 7z only: one carrying a RAR or a cabinet was Benign, while a
    RAR or CAB sent on its own is Unsupported File Type (what it holds is not seen)."""
    from dsxa_lite.archives import container_type

    data = pe_stub(100_000) + archive + filler(2000)
    outcome = scan(scanner, data)
    assert (outcome.verdict, outcome.reason) == (
        "Unsupported File Type",
        f"{kind} archives are not unpacked (at the archive)",
    )
    nested = scan(scanner, build.zip_of({"setup.exe": data}))
    assert (nested.verdict, nested.reason) == (
        "Unsupported File Type",
        f"{kind} archives are not unpacked (at setup.exe)",
    )
    with tempfile.TemporaryFile() as spool:
        spool.write(data)
        body = ReceivedBody(sha256(data), len(data), data[:4096], spool=spool)
        assert container_type(body, detect_file_type(body.head)) == f"{kind} inside"
    # a malicious member elsewhere still wins
    mixed = pe_stub(100_000) + archive + build.zip_of({"eicar.com": eicar()})
    assert scan(scanner, mixed).verdict == "Malicious"


def test_rar_and_cab_signatures_alone_do_not_make_a_program_unsupported(scanner: ScanService) -> None:
    rar5 = build.rar5_start()
    cab = build.cabinet("a.txt", b"hello")
    for tail in (
        b"Rar!\x1a\x07\x01\x00" + filler(100),  # the signature, as an unpacker's code holds it
        b"Rar!\x1a\x07\x00" + filler(100),
        rar5[:9] + bytes([rar5[9] ^ 1]) + rar5[10:] + filler(100),  # a header CRC that fails
        b"MSCF\0\0\0\0" + filler(100),
        cab[:24] + b"\x04" + cab[25:],  # a version other than 1.3
        cab[:-1],  # a cabinet larger than what is left of the body
    ):
        outcome = scan(scanner, pe_stub(5000) + tail)
        assert (outcome.verdict, outcome.reason) == ("Benign", ""), tail[:12]
    # only a program is searched (the cost of the search)
    assert scan(scanner, png_header() + filler(100) + rar5 + filler(100)).verdict == "Benign"


# --- 10. 7z entries py7zr would not hand over ------------------------------------------------------

SOCKET_ATTRIBUTES = 0x8000 | (stat.S_IFSOCK | 0o644) << 16


@pytest.mark.parametrize(
    "attributes",
    [
        SOCKET_ATTRIBUTES,
        stat.FILE_ATTRIBUTE_DIRECTORY,
        0x8000 | stat.FILE_ATTRIBUTE_DIRECTORY | (stat.S_IFDIR | 0o755) << 16,
    ],
    ids=["unix-socket", "windows-directory", "unix-directory"],
)
def test_7z_entry_with_data_is_scanned_whatever_its_attributes_say(
    scanner: ScanService, attributes: int
) -> None:
    """py7zr skips an entry whose attributes say socket or directory; 7-Zip takes any entry with
    a data stream for a file and extracts it (on Windows a socket mode means nothing)."""
    data = build.seven_zip_with_attributes(
        {"a.txt": b"hello", "eicar.com": eicar()}, {"eicar.com": attributes}
    )
    outcome = scan(scanner, data)
    assert (outcome.verdict, outcome.reason) == ("Malicious", f"{EICAR_REASON} (in eicar.com)")


def test_7z_entry_with_data_left_out_is_not_scanned(monkeypatch: pytest.MonkeyPatch) -> None:
    # an entry py7zr still leaves out (here: made a socket again) is not passed as Benign
    monkeypatch.setattr(formats, "_PLAIN_FILE_ATTRIBUTES", SOCKET_ATTRIBUTES)
    data = build.seven_zip_with_attributes({"a.txt": b"hello", "b.txt": b"b"}, {"b.txt": SOCKET_ATTRIBUTES})
    outcome = scan(service(), data)
    assert (outcome.verdict, outcome.reason) == (
        "Not Scanned",
        "1 7z member(s) with data not unpacked (at the archive)",
    )
    assert scan(service(), build.seven_zip({"a.txt": b"hello", "b.txt": b"b"})).verdict == "Benign"
