"""File type from the first bytes (magic numbers), as reported in ``file_info.file_type``.

Types: ``PE``, ``ELF``, ``PDF``, ``ZIP``, ``OLE``, ``RTF``, ``PNG``, ``JPEG``, ``GZIP``, ``Text``,
else ``Unknown`` (also for an empty file).
"""

from __future__ import annotations

import struct

_MAGIC: tuple[tuple[bytes, str], ...] = (
    (b"\x7fELF", "ELF"),
    (b"%PDF-", "PDF"),
    (b"PK\x03\x04", "ZIP"),
    (b"PK\x05\x06", "ZIP"),  # empty archive
    (b"PK\x07\x08", "ZIP"),  # spanned archive
    (b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1", "OLE"),
    (b"{\\rtf", "RTF"),
    (b"\x89PNG\r\n\x1a\n", "PNG"),
    (b"\xff\xd8\xff", "JPEG"),
    (b"\x1f\x8b", "GZIP"),
)

# bytes that may appear in text: printable ASCII and 8-bit, plus BEL BS TAB LF FF CR ESC
# (the heuristic of file(1) and of many "is this binary?" checks)
_TEXT_BYTES = bytes({7, 8, 9, 10, 12, 13, 27} | set(range(0x20, 0x100)) - {0x7F})


def _is_pe(head: bytes) -> bool:
    # MZ header; e_lfanew (offset 0x3C) points to the "PE\0\0" signature (PE/COFF spec §3)
    if len(head) < 0x40 or not head.startswith(b"MZ"):
        return False
    (pe_offset,) = struct.unpack_from("<I", head, 0x3C)
    # a signature past the head (rare: e_lfanew is usually below 0x200) is not checked: not PE
    return head[pe_offset : pe_offset + 4] == b"PE\0\0"


def detect_file_type(head: bytes) -> str:
    """Name the type of a file from its first bytes (a few KiB are enough)."""
    if not head:
        return "Unknown"
    if _is_pe(head):
        return "PE"
    for magic, name in _MAGIC:
        if head.startswith(magic):
            return name
    if not head.translate(None, _TEXT_BYTES):
        return "Text"
    return "Unknown"
