"""File type from the first bytes, as reported in ``file_info.file_type`` and ``dsxa_file_type``.

Stable names, checked first by a small table of magic numbers (fast: this runs on every scan):
``PE``, ``ELF``, ``Mach-O``, ``PDF``, ``OOXML Word``, ``OOXML Excel``, ``OOXML PowerPoint``,
``ZIP``, ``OLE``, ``RTF``, ``7Z``, ``RAR``, ``GZIP``, ``BZIP2``, ``XZ``, ``TAR``, ``PNG``, ``JPEG``,
``GIF``, ``BMP``, ``TIFF``, ``WEBP``, ``Shell Script``, ``Python Script``, ``Perl Script``,
``Script`` (any other ``#!``), ``PowerShell`` (``.ps1`` header keywords), ``Text``, ``Unknown``.

A tar is recognised by its ``ustar`` magic or, old V7 tars included, by a valid header checksum
(as ``tarfile`` itself decides), before the magic numbers: a tar whose first member is named
``%PDF-…`` is still a tar. ``LZMA`` is an LZMA-alone (``.lzma``) stream. A ZIP with bytes in
front (a self-extractor, a polyglot) is found from its end record (:func:`zip_directory`, the
way ``zipfile`` and ``unzip`` open it): named ``ZIP`` when the head holds the whole file (under 4 KiB) and no
other type; the archive walk looks for it past the head (``dsxa_lite.archives.container_type``).

Anything else is looked up in the signature database of ``puremagic`` (a maintained, pure-Python
file-identification library; offset-0 signatures, indexed by their first two bytes so that the
look-up costs one dict access) and named by its usual extension in upper case (``MP4``, ``ISO``…);
``Unknown`` when nothing matches, and for an empty file.
"""

from __future__ import annotations

import struct
import zlib
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass

import puremagic

from dsxa_lite.engines import HEAD_BYTES

# Mach-O: 32/64-bit, both byte orders; fat binaries (0xCAFEBABE) share Java's class magic
_MACH_O_MAGIC = (b"\xfe\xed\xfa\xce", b"\xfe\xed\xfa\xcf", b"\xce\xfa\xed\xfe", b"\xcf\xfa\xed\xfe")
_ELF_MAGIC = b"\x7fELF"
#: how a program starts: a PE (``MZ``, named by puremagic), ELF or Mach-O
PROGRAM_MAGIC = (b"MZ", _ELF_MAGIC, *_MACH_O_MAGIC)

_MAGIC: tuple[tuple[bytes, str], ...] = (
    (_ELF_MAGIC, "ELF"),
    (b"%PDF-", "PDF"),
    (b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1", "OLE"),
    (b"{\\rtf", "RTF"),
    (b"7z\xbc\xaf\x27\x1c", "7Z"),
    (b"Rar!\x1a\x07", "RAR"),
    (b"\x1f\x8b", "GZIP"),
    (b"BZh", "BZIP2"),
    (b"\xfd7zXZ\x00", "XZ"),
    (b"\x89PNG\r\n\x1a\n", "PNG"),
    (b"\xff\xd8\xff", "JPEG"),
    (b"GIF87a", "GIF"),
    (b"GIF89a", "GIF"),
    (b"II*\x00", "TIFF"),
    (b"MM\x00*", "TIFF"),
    *((magic, "Mach-O") for magic in _MACH_O_MAGIC),
)
_ZIP_MAGIC = (b"PK\x03\x04", b"PK\x05\x06", b"PK\x07\x08")
# an OOXML package names its main part in the first local headers (ECMA-376 Part 2)
_OOXML_PARTS = ((b"word/", "OOXML Word"), (b"xl/", "OOXML Excel"), (b"ppt/", "OOXML PowerPoint"))
_SHEBANGS = (
    (b"sh", "Shell Script"),
    (b"bash", "Shell Script"),
    (b"python", "Python Script"),
    (b"perl", "Perl Script"),
)
_POWERSHELL_HINTS = (b"param(", b"[cmdletbinding(", b"write-host", b"write-output", b"invoke-", b"$env:")

# bytes that may appear in text: printable ASCII and 8-bit, plus BEL BS TAB LF FF CR ESC
# (the heuristic of file(1) and of many "is this binary?" checks)
_TEXT_BYTES = bytes({7, 8, 9, 10, 12, 13, 27} | set(range(0x20, 0x100)) - {0x7F})


# tar headers (POSIX ustar, and the V7 layout before it): a 512-byte block whose bytes 148-155
# hold, in octal, the sum of the block's bytes with that field counted as spaces
TAR_BLOCK = 512
_OCTAL_DIGITS = b"01234567"
_LOW_BYTES = bytes(range(128))


def tar_checksum_ok(block: bytes) -> bool:
    """Whether ``block`` starts with a tar header whose checksum is right (``tarfile`` accepts
    the unsigned and the signed sum; an all-zero block is the end of an archive, not a header)."""
    if len(block) < TAR_BLOCK:
        return False
    field = block[148:156].split(b"\0", 1)[0].strip()
    if not field or field.translate(None, _OCTAL_DIGITS):
        return False  # most files stop here: no octal number where the checksum goes
    header = block[:TAR_BLOCK]
    unsigned = 256 + sum(header) - sum(header[148:156])
    if int(field, 8) == unsigned:
        return True
    high = len(header[:148].translate(None, _LOW_BYTES)) + len(header[156:].translate(None, _LOW_BYTES))
    return int(field, 8) == unsigned - 256 * high


def looks_like_tar(block: bytes) -> bool:
    """A tar header: the ``ustar`` magic or a valid checksum (a V7 tar has no magic)."""
    return block[257:262] == b"ustar" or tar_checksum_ok(block)


def _is_lzma_alone(head: bytes) -> bool:
    # .lzma (LZMA-alone) has no magic: the properties byte every encoder writes (lc=3 lp=0
    # pb=2), a dictionary size of 2^n or 2^n + 2^(n-1), and the unpacked size or -1 (file(1)
    # reads it the same way)
    if len(head) < 13 or head[0] != 0x5D:
        return False
    dictionary, unpacked = struct.unpack_from("<IQ", head, 1)
    if dictionary < 4096:
        return False
    top = 1 << (dictionary.bit_length() - 1)
    return dictionary in (top, top | top >> 1) and (unpacked == 2**64 - 1 or unpacked < 2**48)


# ZIP end records (APPNOTE 4.3.16, 4.3.14, 4.3.15): found from the end, as zipfile and unzip do
ZIP_END = b"PK\x05\x06"
ZIP_CENTRAL_ENTRY = b"PK\x01\x02"
_ZIP64_LOCATOR = b"PK\x06\x07"
_ZIP64_END = b"PK\x06\x06"
_END_SIZE = 22
_LOCATOR_SIZE = 20
_END64_SIZE = 56
_MAX_COMMENT = 0xFFFF
# the last bytes of a file that can hold its end records
ZIP_TAIL_BYTES = _MAX_COMMENT + _END_SIZE + _LOCATOR_SIZE + _END64_SIZE


@dataclass(frozen=True, slots=True)
class ZipDirectory:
    """Where a ZIP's central directory lies, as its end record (or ZIP64 end record) says:
    ``start`` in the file (after any bytes in front of the archive), its ``size`` in bytes, and
    the number of ``entries`` it declares."""

    start: int
    size: int
    entries: int


def zip_directory(read_at: Callable[[int, int], bytes], size: int) -> ZipDirectory | None:
    """The central directory of the ZIP that ends a file of ``size`` bytes (``read_at(offset,
    length)`` reads it), located the way ``zipfile`` does, whatever comes before the archive;
    None unless an end record points at a central directory entry."""
    if size < _END_SIZE:
        return None
    tail_start = max(size - ZIP_TAIL_BYTES, 0)
    tail = read_at(tail_start, size - tail_start)
    end = len(tail) - _END_SIZE
    if not (tail[end : end + 4] == ZIP_END and tail[-2:] == b"\0\0"):
        end = tail.rfind(ZIP_END, max(len(tail) - _MAX_COMMENT - _END_SIZE, 0))
        if end < 0 or end + _END_SIZE > len(tail):
            return None
    entries, directory_size, _ = struct.unpack_from("<HII", tail, end + 10)
    directory_end = tail_start + end
    locator = end - _LOCATOR_SIZE
    record = locator - _END64_SIZE
    if (
        record >= 0
        and tail[locator : locator + 4] == _ZIP64_LOCATOR
        and tail[record : record + 4] == _ZIP64_END
    ):
        entries, directory_size = struct.unpack_from("<QQ", tail, record + 32)
        directory_end -= _LOCATOR_SIZE + _END64_SIZE
    start = directory_end - directory_size
    if directory_size < 46 or start < 0 or read_at(start, 4) != ZIP_CENTRAL_ENTRY:
        return None
    return ZipDirectory(start, directory_size, entries)


# a 7z archive's signature header (7zFormat.txt): magic, version (major 0), the CRC32 of the next
# 20 bytes, which give where its header lies (offset past these 32 bytes, size, CRC)
SEVEN_ZIP_MAGIC = b"7z\xbc\xaf\x27\x1c"
_SEVEN_ZIP_SIGNATURE_HEADER = 32
#: how far into a body a 7z archive is looked for: a self-extractor's stub comes first, and 7-Zip
#: itself opens such a file only when the archive starts within its first MiB or so
SEVEN_ZIP_SEARCH_BYTES = 4 * 1024 * 1024


def seven_zip_start(haystack: bytes, size: int) -> int | None:
    """Where a 7z archive starts inside a body of ``size`` bytes past its first byte (a
    self-extractor, a 7z appended to another file), ``haystack`` being the body's first bytes
    (:data:`SEVEN_ZIP_SEARCH_BYTES` of them suffice); None unless a signature header's CRC holds
    and the header it points to lies within the body."""
    at = haystack.find(SEVEN_ZIP_MAGIC, 1, SEVEN_ZIP_SEARCH_BYTES)
    while at > 0:
        header = haystack[at : at + _SEVEN_ZIP_SIGNATURE_HEADER]
        if len(header) == _SEVEN_ZIP_SIGNATURE_HEADER and header[6] == 0:
            (crc,) = struct.unpack_from("<I", header, 8)
            next_offset, next_size = struct.unpack_from("<QQ", header, 12)
            if (
                zlib.crc32(header[12:]) == crc
                and next_size > 0
                and at + _SEVEN_ZIP_SIGNATURE_HEADER + next_offset + next_size <= size
            ):
                return at
        at = haystack.find(SEVEN_ZIP_MAGIC, at + 1, SEVEN_ZIP_SEARCH_BYTES)
    return None


# archives a self-extractor carries that this scanner does not unpack, looked for in the same
# window as a 7z: a RAR (WinRAR's self-extractors; unrar looks for it in a file's first 4 MiB) and a
# Microsoft cabinet (IExpress self-extractors keep theirs in a resource)
RAR_MAGIC = b"Rar!\x1a\x07"  # then 0x00 (RAR 1.5-4.x) or 0x01 0x00 (RAR 5)
_RAR4_MAIN_HEADER = 0x73
_RAR5_MAIN_HEADER, _RAR5_ENCRYPTION_HEADER = 1, 4
CAB_MAGIC = b"MSCF\0\0\0\0"  # then the cabinet's size (MS-CAB CFHEADER)
_CAB_HEADER = 36


def _vint(data: bytes, at: int) -> tuple[int, int] | None:
    """A RAR 5 variable-length integer at ``at`` (7 bits a byte, low first) and where it ends;
    None past three bytes (the most a header size takes) or the end of ``data``."""
    value = 0
    for shift in range(0, 21, 7):
        if at >= len(data):
            return None
        byte = data[at]
        value |= (byte & 0x7F) << shift
        at += 1
        if not byte & 0x80:
            return value, at
    return None


def _rar_header_ok(data: bytes, at: int) -> bool:
    """Whether the RAR signature at ``at`` is followed by the archive's first header, its CRC
    right: RAR 4's main header (CRC-32's low 16 bits over the header past the CRC), RAR 5's main
    or encryption header (CRC-32 over the header from its size field on)."""
    version = data[at + 6 : at + 8]
    if version[:1] == b"\0":  # RAR 1.5-4.x: a 7-byte marker block, then the main header
        start = at + 7
        header = data[start : start + 7]
        if len(header) < 7:
            return False
        crc, kind, _flags, size = struct.unpack("<HBHH", header)
        end = start + size
        return (
            kind == _RAR4_MAIN_HEADER
            and size >= 7
            and end <= len(data)
            and (zlib.crc32(data[start + 2 : end]) & 0xFFFF == crc)
        )
    if version != b"\x01\0":
        return False
    start = at + 8
    if start + 4 > len(data):
        return False
    (crc,) = struct.unpack_from("<I", data, start)
    size = _vint(data, start + 4)
    if size is None or size[0] == 0:
        return False
    end = size[1] + size[0]
    kind = _vint(data, size[1])
    return (
        end <= len(data)
        and kind is not None
        and kind[0] in (_RAR5_MAIN_HEADER, _RAR5_ENCRYPTION_HEADER)
        and zlib.crc32(data[start + 4 : end]) == crc
    )


def _cab_header_ok(data: bytes, at: int, size: int) -> bool:
    """Whether the cabinet signature at ``at`` starts a plausible CFHEADER: reserved fields zero,
    format version 1.3, at least one folder and one file, its first file entry inside the
    cabinet, the cabinet within the body's ``size`` bytes."""
    header = data[at : at + _CAB_HEADER]
    if len(header) < _CAB_HEADER:
        return False
    cabinet, reserved2, files_at, reserved3, minor, major, folders, files, flags = struct.unpack_from(
        "<IIIIBBHHH", header, 8
    )
    return (
        reserved2 == reserved3 == 0
        and (major, minor) == (1, 3)
        and folders > 0
        and files > 0
        and not flags & ~0x7
        and _CAB_HEADER <= files_at < cabinet
        and at + cabinet <= size
    )


def unopened_archive_inside(haystack: bytes, size: int) -> str | None:
    """The name (``RAR``, ``CAB``) of an archive this scanner does not unpack that starts inside a
    body of ``size`` bytes past its first byte, ``haystack`` being the body's first bytes (as for
    :func:`seven_zip_start`); None unless the archive's first header checks out (a RAR header's
    CRC, a cabinet header's fields), so that the signature bytes alone, as programs that handle
    these formats hold them, do not count."""
    at = haystack.find(RAR_MAGIC, 1, SEVEN_ZIP_SEARCH_BYTES)
    while at > 0:
        if _rar_header_ok(haystack, at):
            return "RAR"
        at = haystack.find(RAR_MAGIC, at + 1, SEVEN_ZIP_SEARCH_BYTES)
    at = haystack.find(CAB_MAGIC, 1, SEVEN_ZIP_SEARCH_BYTES)
    while at > 0:
        if _cab_header_ok(haystack, at, size):
            return "CAB"
        at = haystack.find(CAB_MAGIC, at + 1, SEVEN_ZIP_SEARCH_BYTES)
    return None


def _bytes_reader(data: bytes) -> Callable[[int, int], bytes]:
    return lambda offset, length: data[offset : offset + length]


def _puremagic_index() -> dict[bytes, list[tuple[bytes, str]]]:
    index: dict[bytes, list[tuple[bytes, str]]] = defaultdict(list)
    for entry in puremagic.magic_header_array:
        match, offset, extension = entry[0], entry[1], entry[2]
        if offset != 0 or len(match) < 2 or not extension:
            continue
        index[match[:2]].append((match, extension.lstrip(".").upper()))
    for candidates in index.values():
        candidates.sort(key=lambda pair: -len(pair[0]))  # the longest match is the most specific
    return dict(index)


_PUREMAGIC = _puremagic_index()


def _is_pe(head: bytes) -> bool:
    # MZ header; e_lfanew (offset 0x3C) points to the "PE\0\0" signature (PE/COFF spec §3)
    if len(head) < 0x40 or not head.startswith(b"MZ"):
        return False
    (pe_offset,) = struct.unpack_from("<I", head, 0x3C)
    # a signature past the head (rare: e_lfanew is usually below 0x200) is not checked: not PE
    return head[pe_offset : pe_offset + 4] == b"PE\0\0"


def _zip_kind(head: bytes) -> str:
    if b"[Content_Types].xml" in head:
        for part, name in _OOXML_PARTS:
            if part in head:
                return name
    return "ZIP"


def _text_kind(head: bytes) -> str:
    if head.startswith(b"#!"):
        interpreter = head[2:128].split(b"\n", 1)[0].strip().split(b" ")
        program = (
            interpreter[-1] if interpreter[0].endswith(b"/env") and len(interpreter) > 1 else interpreter[0]
        )
        base = program.rsplit(b"/", 1)[-1]
        for prefix, name in _SHEBANGS:
            if base.startswith(prefix):
                return name
        return "Script"
    start = head[:1024]
    # PowerShell uses $variables: only then look for its keywords (text is scanned often)
    if b"$" in start:
        lowered = start.lower()
        if sum(1 for hint in _POWERSHELL_HINTS if hint in lowered) >= 2:
            return "PowerShell"
    return "Text"


def _by_first_byte() -> dict[int, tuple[tuple[bytes, str], ...]]:
    table: dict[int, list[tuple[bytes, str]]] = defaultdict(list)
    for magic, name in _MAGIC:
        table[magic[0]].append((magic, name))
    return {first: tuple(entries) for first, entries in table.items()}


# one dict access picks the few magics that can match (this runs on every scan)
_MAGIC_BY_FIRST_BYTE = _by_first_byte()


def detect_file_type(head: bytes) -> str:
    """Name the type of a file from its first bytes (a few KiB are enough)."""
    if not head:
        return "Unknown"
    if tar_checksum_ok(head):
        return "TAR"
    first = head[0]
    if first == 0x4D and _is_pe(head):  # "M"
        return "PE"
    if first == 0x50 and head.startswith(_ZIP_MAGIC):  # "P"
        return _zip_kind(head)
    for magic, name in _MAGIC_BY_FIRST_BYTE.get(first, ()):
        if head.startswith(magic):
            return name
    if head[257:262] == b"ustar":
        return "TAR"
    if first == 0x5D and _is_lzma_alone(head):  # "]"
        return "LZMA"
    if first == 0x52 and head.startswith(b"RIFF") and head[8:12] == b"WEBP":  # "R"
        return "WEBP"
    if first == 0x42 and head.startswith(b"BM") and len(head) > 14 and head[6:10] == b"\0\0\0\0":  # "B"
        return "BMP"
    # a ZIP with bytes in front, when the head is the whole file (a larger one: see the docstring)
    if (
        len(head) < HEAD_BYTES
        and ZIP_END in head
        and zip_directory(_bytes_reader(head), len(head)) is not None
    ):
        return _zip_kind(head)
    if not head.translate(None, _TEXT_BYTES):
        return _text_kind(head)
    for match, name in _PUREMAGIC.get(head[:2], ()):
        if head.startswith(match):
            return name
    return "Unknown"
