"""Archives for the dsxa_lite tests, built at run time (nothing binary is stored)."""

from __future__ import annotations

import bz2
import io
import lzma
import struct
import tarfile
import zipfile
import zlib

import py7zr
import pyzipper

MiB = 1024 * 1024


def zip_of(members: dict[str, bytes], compression: int = zipfile.ZIP_DEFLATED) -> bytes:
    """A zip holding ``members`` (name → bytes)."""
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", compression) as archive:
        for name, data in members.items():
            archive.writestr(name, data)
    return out.getvalue()


def tar_of(members: dict[str, bytes], mode: str = "w:gz") -> bytes:
    """A tar (``mode`` picks the compression: ``w``, ``w:gz``, ``w:bz2``, ``w:xz``)."""
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode=mode) as archive:  # type: ignore[call-overload]
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            archive.addfile(info, io.BytesIO(data))
    return out.getvalue()


def gzip_of(data: bytes) -> bytes:
    import gzip

    return gzip.compress(data)


def bzip2_of(data: bytes) -> bytes:
    return bz2.compress(data)


def xz_of(data: bytes) -> bytes:
    return lzma.compress(data)


def nested_zip(inner: bytes, name: str, depth: int) -> bytes:
    """``inner`` (named ``name``) inside ``depth`` zips, each inside the next."""
    data = zip_of({name: inner})
    for level in range(2, depth + 1):
        data = zip_of({f"level{level - 1}.zip": data})
    return data


def aes_zip(members: dict[str, bytes], password: str) -> bytes:
    """A WinZip AES-256 encrypted zip."""
    out = io.BytesIO()
    with pyzipper.AESZipFile(
        out, "w", compression=pyzipper.ZIP_DEFLATED, encryption=pyzipper.WZ_AES
    ) as archive:
        archive.setpassword(password.encode())
        for name, data in members.items():
            archive.writestr(name, data)
    return out.getvalue()


def _zipcrypto_keys(password: bytes) -> list[int]:
    keys = [0x12345678, 0x23456789, 0x34567890]
    for byte in password:
        _update_keys(keys, byte)
    return keys


def _crc(crc: int, byte: int) -> int:
    return zlib.crc32(bytes([byte]), crc ^ 0xFFFFFFFF) ^ 0xFFFFFFFF


def _update_keys(keys: list[int], byte: int) -> None:
    # traditional PKWARE encryption (APPNOTE.TXT 6.1)
    keys[0] = _crc(keys[0], byte)
    keys[1] = (keys[1] + (keys[0] & 0xFF)) & 0xFFFFFFFF
    keys[1] = (keys[1] * 134775813 + 1) & 0xFFFFFFFF
    keys[2] = _crc(keys[2], keys[1] >> 24)


def _encrypt(keys: list[int], data: bytes) -> bytes:
    out = bytearray()
    for byte in data:
        temp = (keys[2] | 2) & 0xFFFF
        out.append(byte ^ ((temp * (temp ^ 1)) >> 8) & 0xFF)
        _update_keys(keys, byte)
    return bytes(out)


def zipcrypto_zip(name: str, data: bytes, password: str) -> bytes:
    """A one-member zip with traditional PKWARE (ZipCrypto) encryption, stored."""
    crc = zlib.crc32(data)
    keys = _zipcrypto_keys(password.encode())
    header = bytes(11) + bytes([crc >> 24 & 0xFF])  # the last byte is the password check
    payload = _encrypt(keys, header + data)
    raw_name = name.encode()
    local = struct.pack(
        "<IHHHHHIIIHH", 0x04034B50, 20, 1, 0, 0, 0, crc, len(payload), len(data), len(raw_name), 0
    )
    central = struct.pack(
        "<IHHHHHHIIIHHHHHII",
        0x02014B50,
        20,
        20,
        1,
        0,
        0,
        0,
        crc,
        len(payload),
        len(data),
        len(raw_name),
        0,
        0,
        0,
        0,
        0,
        0,
    )
    body = local + raw_name + payload
    directory = central + raw_name
    end = struct.pack("<IHHHHIIH", 0x06054B50, 0, 0, 1, 1, len(directory), len(body), 0)
    return body + directory + end


def seven_zip(members: dict[str, bytes], password: str | None = None) -> bytes:
    """A 7z archive (AES-256 with headers encrypted when ``password`` is given)."""
    out = io.BytesIO()
    with py7zr.SevenZipFile(out, "w", password=password, header_encryption=password is not None) as archive:
        for name, data in members.items():
            archive.writestr(data, name)
    return out.getvalue()


def bomb_42(levels: int = 4, fan_out: int = 16, base_bytes: int = 64 * MiB) -> bytes:
    """A 42.zip-style bomb: ``fan_out`` copies of the level below at each of ``levels`` levels,
    a zip of ``base_bytes`` zeros at the bottom (16**4 × 64 MiB = 4 TiB unpacked by default)."""
    data = zip_of({"0.bin": bytes(base_bytes)})
    for level in range(levels):
        data = zip_of({f"lib{level}-{n:x}.zip": data for n in range(fan_out)})
    return data


def zeros_tar_gz(member_bytes: int, name: str = "huge.bin") -> bytes:
    """A .tar.gz whose one member is ``member_bytes`` zeros (10 GiB fits in ~10 MB), built
    without compressing them: a full-flushed deflate block of 1 MiB of zeros is independent of
    what precedes it, so the stream repeats it. The gzip trailer is not valid (never reached)."""
    info = tarfile.TarInfo(name)
    info.size = member_bytes
    head = zlib.compressobj(9, zlib.DEFLATED, -15)
    start = head.compress(info.tobuf(format=tarfile.GNU_FORMAT)) + head.flush(zlib.Z_FULL_FLUSH)
    block = zlib.compressobj(9, zlib.DEFLATED, -15)
    zeros = block.compress(bytes(MiB)) + block.flush(zlib.Z_FULL_FLUSH)
    deflated = start + zeros * (member_bytes // MiB) + b"\x03\x00"
    return b"\x1f\x8b\x08\x00\x00\x00\x00\x00\x00\xff" + deflated + bytes(8)


def many_members(count: int) -> bytes:
    """A zip of ``count`` small distinct text members."""
    return zip_of({f"dir{n // 1000}/file{n}.txt": f"member {n}\n".encode() for n in range(count)})


def docx_without_macros() -> bytes:
    """A minimal Word document (OOXML) with no macros."""
    content_types = (
        '<?xml version="1.0" encoding="UTF-8"?><Types xmlns="http://schemas.openxmlformats.org/package/2006/'
        'content-types"><Default Extension="rels" ContentType="application/vnd.openxmlformats-package.'
        'relationships+xml"/><Default Extension="xml" ContentType="application/xml"/><Override PartName='
        '"/word/document.xml" ContentType="application/vnd.openxmlformats-officedocument.wordprocessingml.'
        'document.main+xml"/></Types>'
    )
    rels = (
        '<?xml version="1.0" encoding="UTF-8"?><Relationships xmlns="http://schemas.openxmlformats.org/'
        'package/2006/relationships"><Relationship Id="rId1" Type="http://schemas.openxmlformats.org/'
        'officeDocument/2006/relationships/officeDocument" Target="word/document.xml"/></Relationships>'
    )
    document = (
        '<?xml version="1.0" encoding="UTF-8"?><w:document xmlns:w="http://schemas.openxmlformats.org/'
        'wordprocessingml/2006/main"><w:body><w:p><w:r><w:t>Quarterly report</w:t></w:r></w:p></w:body>'
        "</w:document>"
    )
    return zip_of(
        {
            "[Content_Types].xml": content_types.encode(),
            "_rels/.rels": rels.encode(),
            "word/document.xml": document.encode(),
        }
    )


def seven_zip_with_attributes(members: dict[str, bytes], attributes: dict[str, int]) -> bytes:
    """A 7z archive whose entries named in ``attributes`` carry those attribute bits (Windows
    attributes, and the Unix mode in the high 16 bits with 0x8000 set) instead of py7zr's."""
    out = io.BytesIO()
    with py7zr.SevenZipFile(out, "w") as archive:
        for name, data in members.items():
            archive.writestr(data, name)
            if name in attributes:
                archive.header.files_info.files[-1]["attributes"] = attributes[name]
    return out.getvalue()


def tar_blocks(members: dict[str, bytes]) -> bytes:
    """Tar members (ustar headers and data blocks) with no end-of-archive blocks after them."""
    out = bytearray()
    for name, data in members.items():
        info = tarfile.TarInfo(name)
        info.size = len(data)
        out += info.tobuf(format=tarfile.USTAR_FORMAT) + data + bytes(-len(data) % 512)
    return bytes(out)


def tar_headers(count: int, kind: bytes = tarfile.DIRTYPE, name: str = "d") -> bytes:
    """A tar of ``count`` headers of type ``kind`` (directories: no data), all named ``name``."""
    info = tarfile.TarInfo(name)
    info.type = kind
    return info.tobuf(format=tarfile.USTAR_FORMAT) * count + bytes(1024)


def _rar5_vint(value: int) -> bytes:
    out = bytearray()
    while True:
        byte, value = value & 0x7F, value >> 7
        out.append(byte | (0x80 if value else 0))
        if not value:
            return bytes(out)


def rar5_start() -> bytes:
    """The start of a RAR 5 archive: its signature and main archive header (CRC-32 over the
    header from its size field on), as a WinRAR self-extractor carries after its stub."""
    fields = _rar5_vint(1) + _rar5_vint(0) + _rar5_vint(0)  # main header, no flags, no archive flags
    header = _rar5_vint(len(fields)) + fields
    return b"Rar!\x1a\x07\x01\x00" + struct.pack("<I", zlib.crc32(header)) + header


def rar4_start() -> bytes:
    """The start of a RAR 1.5-4.x archive: its marker block and main header (MAIN_HEAD, 13
    bytes, CRC-32's low 16 bits over the header past the CRC)."""
    fields = struct.pack("<BHH", 0x73, 0, 13) + bytes(6)
    return b"Rar!\x1a\x07\x00" + struct.pack("<H", zlib.crc32(fields) & 0xFFFF) + fields


def cabinet(name: str, data: bytes) -> bytes:
    """A Microsoft cabinet (MS-CAB) holding ``data`` as ``name``, stored (no compression)."""
    raw_name = name.encode() + b"\0"
    files_at = 36 + 8  # CFHEADER, then one CFFOLDER
    data_at = files_at + 16 + len(raw_name)
    size = data_at + 8 + len(data)
    header = b"MSCF" + struct.pack("<IIIIIBBHHHHH", 0, size, 0, files_at, 0, 3, 1, 1, 1, 0, 0, 0)
    folder = struct.pack("<IHH", data_at, 1, 0)
    entry = struct.pack("<IIHHHH", len(data), 0, 0, 0, 0, 0x20) + raw_name
    block = struct.pack("<IHH", 0, len(data), len(data)) + data
    return header + folder + entry + block
