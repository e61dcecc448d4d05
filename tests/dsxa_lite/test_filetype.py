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
        (b"BZh91AY&SY", "BZIP2"),
        (b"\xfd7zXZ\x00\x00\x04", "XZ"),
        (b"7z\xbc\xaf\x27\x1c\x00\x04", "7Z"),
        (b"Rar!\x1a\x07\x01\x00", "RAR"),
        (b"\xcf\xfa\xed\xfe\x07\x00\x00\x01", "Mach-O"),
        (b"\xfe\xed\xfa\xce\x00\x00\x00\x07", "Mach-O"),
        (b"GIF89a\x01\x00\x01\x00", "GIF"),
        (b"II*\x00\x08\x00\x00\x00", "TIFF"),
        (b"RIFF\x24\x00\x00\x00WEBPVP8 ", "WEBP"),
        (b"#!/bin/sh\necho hello\n", "Shell Script"),
        (b"#!/usr/bin/env python3\nprint('hi')\n", "Python Script"),
        (b"#!/usr/bin/perl -w\nprint 1;\n", "Perl Script"),
        (b"#!/usr/bin/ruby\nputs 1\n", "Script"),
        (b'param($Name)\nWrite-Host "Hello $Name"\n', "PowerShell"),
        (b"costs $5 and param( nothing else\n", "Text"),
        (b"\x00\x00\x00\x18ftypmp42\x00\x00\x00\x00mp42isom", "MP4"),  # from puremagic's database
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


def test_tar_is_recognised_by_its_ustar_magic() -> None:
    head = bytearray(512)
    head[257:263] = b"ustar\0"
    assert detect_file_type(bytes(head)) == "TAR"


@pytest.mark.parametrize(
    ("part", "expected"),
    [
        (b"word/document.xml", "OOXML Word"),
        (b"xl/workbook.xml", "OOXML Excel"),
        (b"ppt/presentation.xml", "OOXML PowerPoint"),
    ],
)
def test_ooxml_packages_are_named_by_their_main_part(part: bytes, expected: str) -> None:
    head = (
        b"PK\x03\x04" + b"\0" * 26 + b"[Content_Types].xml" + b"\0" * 40 + b"PK\x03\x04" + b"\0" * 26 + part
    )
    assert detect_file_type(head) == expected


def test_zip_without_content_types_is_zip() -> None:
    assert detect_file_type(b"PK\x03\x04" + b"\0" * 26 + b"word/document.xml") == "ZIP"
