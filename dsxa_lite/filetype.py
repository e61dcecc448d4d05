"""File type from the first bytes, as reported in ``file_info.file_type`` and ``dsxa_file_type``.

Stable names, checked first by a small table of magic numbers (fast: this runs on every scan):
``PE``, ``ELF``, ``Mach-O``, ``PDF``, ``OOXML Word``, ``OOXML Excel``, ``OOXML PowerPoint``,
``ZIP``, ``OLE``, ``RTF``, ``7Z``, ``RAR``, ``GZIP``, ``BZIP2``, ``XZ``, ``TAR``, ``PNG``, ``JPEG``,
``GIF``, ``BMP``, ``TIFF``, ``WEBP``, ``Shell Script``, ``Python Script``, ``Perl Script``,
``Script`` (any other ``#!``), ``PowerShell`` (``.ps1`` header keywords), ``Text``, ``Unknown``.

Anything else is looked up in the signature database of ``puremagic`` (a maintained, pure-Python
file-identification library; offset-0 signatures, indexed by their first two bytes so that the
look-up costs one dict access) and named by its usual extension in upper case (``MP4``, ``ISO``…);
``Unknown`` when nothing matches, and for an empty file.
"""

from __future__ import annotations

import struct
from collections import defaultdict

import puremagic

_MAGIC: tuple[tuple[bytes, str], ...] = (
    (b"\x7fELF", "ELF"),
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
    # Mach-O: 32/64-bit, both byte orders; fat binaries (0xCAFEBABE) share Java's class magic
    (b"\xfe\xed\xfa\xce", "Mach-O"),
    (b"\xfe\xed\xfa\xcf", "Mach-O"),
    (b"\xce\xfa\xed\xfe", "Mach-O"),
    (b"\xcf\xfa\xed\xfe", "Mach-O"),
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
    if first == 0x52 and head.startswith(b"RIFF") and head[8:12] == b"WEBP":  # "R"
        return "WEBP"
    if first == 0x42 and head.startswith(b"BM") and len(head) > 14 and head[6:10] == b"\0\0\0\0":  # "B"
        return "BMP"
    if not head.translate(None, _TEXT_BYTES):
        return _text_kind(head)
    for match, name in _PUREMAGIC.get(head[:2], ()):
        if head.startswith(match):
            return name
    return "Unknown"
