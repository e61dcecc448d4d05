"""File types from magic bytes."""

from __future__ import annotations

import struct

import pytest

from dsxa_lite.filetype import detect_file_type

pytestmark = pytest.mark.unit


def pe_header() -> bytes:
    head = bytearray(b"MZ" + b"\0" * 0x7E)
    struct.pack_into("<I", head, 0x3C, 0x80)
    return bytes(head) + b"PE\0\0" + b"\0" * 64


@pytest.mark.parametrize(
    ("head", "expected"),
    [
        (pe_header(), "PE"),
        (b"\x7fELF\x02\x01\x01" + b"\0" * 9, "ELF"),
        (b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n", "PDF"),
        (b"PK\x03\x04\x14\x00\x00\x00", "ZIP"),
        (b"PK\x05\x06" + b"\0" * 18, "ZIP"),
        (b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + b"\0" * 24, "OLE"),
        (b"{\\rtf1\\ansi hello}", "RTF"),
        (b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR", "PNG"),
        (b"\xff\xd8\xff\xe0\0\x10JFIF", "JPEG"),
        (b"\x1f\x8b\x08\x00", "GZIP"),
        (b"just some words\r\n\ttabbed\n", "Text"),
        ("caf\u00e9 na\u00efve".encode(), "Text"),
        (b"\x00\x01\x02\x03binary", "Unknown"),
        (b"", "Unknown"),
    ],
)
def test_detects_type_from_magic(head: bytes, expected: str) -> None:
    assert detect_file_type(head) == expected


def test_mz_text_without_pe_signature_is_not_pe() -> None:
    assert detect_file_type(b"MZ is how this text file happens to start, " * 4) == "Text"
