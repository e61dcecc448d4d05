"""One function per archive format: list the members of a source and hand each to the walk.

Each reads its source sequentially or through the format's own index (zip's central directory,
7z's header) and never holds a whole member: members are read in chunks by
:meth:`ArchiveScan.read_member` (7z writes them through :class:`_SinkWriter`).
"""

from __future__ import annotations

import bz2
import gzip
import lzma
import tarfile
import zipfile
import zlib
from collections.abc import Callable
from typing import TYPE_CHECKING, BinaryIO

import py7zr
import py7zr.exceptions
import py7zr.io
import py7zr.py7zr
import pyzipper

from dsxa_lite.archives.limits import LimitReached, StopWalk
from shared.models import Verdict

if TYPE_CHECKING:
    from dsxa_lite.archives.sink import MemberSink
    from dsxa_lite.archives.walker import ArchiveScan

SEVEN_ZIP_ERRORS: tuple[type[BaseException], ...] = (
    py7zr.exceptions.ArchiveError,
    py7zr.exceptions.Bad7zFile,
    py7zr.exceptions.CrcError,
    py7zr.exceptions.DecompressionError,
    py7zr.exceptions.InternalError,
    py7zr.exceptions.PasswordRequired,
    py7zr.exceptions.UnsupportedCompressionMethodError,
)
# py7zr hands a member to its writer in chunks of ``get_memory_limit()`` bytes, 128 MB by default
# (so a 7z member cost up to twice that in memory); 1 MiB chunks keep members memory-bounded like
# every other format. The function is looked up in py7zr's module at each extraction.
SEVEN_ZIP_CHUNK_BYTES = 1024 * 1024
py7zr.py7zr.get_memory_limit = lambda: SEVEN_ZIP_CHUNK_BYTES
_ZIP_ENCRYPTED = 0x1  # general purpose bit 0 (APPNOTE 4.4.4)
NO_PASSWORD = "Encrypted archive member and no password (scan_password header or DSXA_LITE_ARCHIVE_PASSWORDS)"
WRONG_PASSWORD = "Encrypted archive member and none of the passwords opens it"


def _open_encrypted(
    archive: pyzipper.AESZipFile, info: zipfile.ZipInfo, passwords: list[str]
) -> BinaryIO | str:
    for password in passwords:
        try:
            return archive.open(info, pwd=password.encode())
        except RuntimeError:  # the password check (ZipCrypto check byte, AES verifier) failed
            continue
    return WRONG_PASSWORD if passwords else NO_PASSWORD


def _describe(exc: BaseException) -> str:
    return str(exc) or type(exc).__name__


def walk_zip(source: BinaryIO, walk: ArchiveScan, prefix: str) -> None:
    """ZIP, OOXML included: stored, deflate, bzip2, lzma; ZipCrypto and WinZip AES (pyzipper).

    zipfile raises many kinds of exception on damaged input (BadZipFile, NotImplementedError for
    an odd version field, IndexError, KeyError, zlib and struct errors…): each is the archive's or
    the member's problem, never a failed scan.
    """
    try:
        archive = pyzipper.AESZipFile(source)
    except Exception as exc:
        walk.problem(prefix.rstrip("/"), Verdict.NOT_SCANNED, f"corrupt ZIP archive: {_describe(exc)}")
        return
    with archive:
        for info in archive.infolist():
            if info.is_dir():
                continue
            path = prefix + info.filename
            walk.budget.member(path, info.file_size)
            try:
                if info.flag_bits & _ZIP_ENCRYPTED:
                    opened = _open_encrypted(archive, info, walk.passwords)
                    if isinstance(opened, str):
                        walk.problem(path, Verdict.NOT_SCANNED, opened)
                        continue
                else:
                    opened = archive.open(info)
            except NotImplementedError as exc:  # a compression method this scanner lacks
                walk.problem(path, Verdict.UNSUPPORTED, f"cannot unpack: {_describe(exc)}")
                continue
            except (LimitReached, StopWalk):
                raise
            except Exception as exc:
                walk.problem(path, Verdict.NOT_SCANNED, f"cannot unpack: {_describe(exc)}")
                continue
            with opened:
                walk.read_member(path, opened)


def walk_tar(source: BinaryIO, walk: ArchiveScan, prefix: str) -> None:
    """TAR (ustar, GNU, pax; sparse members included), read as a stream: regular files only."""
    try:
        with tarfile.open(fileobj=source, mode="r|") as archive:
            for info in archive:
                if not info.isfile():
                    continue
                path = prefix + info.name
                walk.budget.member(path, info.size)
                reader = archive.extractfile(info)
                if reader is not None:
                    walk.read_member(path, reader)
    except (LimitReached, StopWalk):
        raise
    except (tarfile.TarError, OSError, EOFError, ValueError, zlib.error, lzma.LZMAError) as exc:
        walk.problem(prefix.rstrip("/"), Verdict.NOT_SCANNED, f"corrupt TAR archive: {_describe(exc)}")


def _gzip_name(source: BinaryIO) -> str | None:
    """The original file name stored in a gzip header (RFC 1952 FNAME), if any."""
    source.seek(0)
    header = source.read(10)
    if len(header) < 10 or not header[3] & 0x08:
        return None
    if header[3] & 0x04:  # FEXTRA comes first
        extra = source.read(2)
        source.seek(int.from_bytes(extra, "little"), 1)
    name = bytearray()
    while (byte := source.read(1)) and byte != b"\0" and len(name) < 255:
        name += byte
    return name.decode("latin-1").rsplit("/", 1)[-1] or None


def _walk_compressed(
    source: BinaryIO, walk: ArchiveScan, prefix: str, opener: Callable[[BinaryIO], BinaryIO], name: str
) -> None:
    """A compressed stream: a tar inside is walked as a tar, anything else is one member."""
    source.seek(0)
    stream = opener(source)
    try:
        first = stream.read(512)
    except (OSError, EOFError, ValueError, lzma.LZMAError, zlib.error) as exc:
        walk.problem(prefix.rstrip("/"), Verdict.NOT_SCANNED, f"corrupt compressed stream: {_describe(exc)}")
        return
    if len(first) == 512 and first[257:262] == b"ustar":
        source.seek(0)
        walk_tar(opener(source), walk, prefix)
        return
    path = prefix + name
    walk.budget.member(path, None)
    walk.read_member(path, _Prepended(first, stream))


class _Prepended:
    """``head`` then the rest of ``stream``, as a reader."""

    def __init__(self, head: bytes, stream: BinaryIO) -> None:
        self.head = head
        self.stream = stream

    def read(self, size: int = -1, /) -> bytes:
        if self.head:
            head, self.head = self.head, b""
            return head
        return self.stream.read(size)


def walk_gzip(source: BinaryIO, walk: ArchiveScan, prefix: str) -> None:
    """gzip (a .tar.gz is walked as a tar)."""
    name = _gzip_name(source) or "content"
    _walk_compressed(source, walk, prefix, lambda src: gzip.GzipFile(fileobj=src, mode="rb"), name)  # type: ignore[arg-type,return-value]


def walk_bzip2(source: BinaryIO, walk: ArchiveScan, prefix: str) -> None:
    """bzip2 (a .tar.bz2 is walked as a tar)."""
    _walk_compressed(source, walk, prefix, lambda src: bz2.BZ2File(src), "content")  # type: ignore[arg-type,return-value]


def walk_xz(source: BinaryIO, walk: ArchiveScan, prefix: str) -> None:
    """xz (a .tar.xz is walked as a tar)."""
    _walk_compressed(source, walk, prefix, lambda src: lzma.LZMAFile(src), "content")  # type: ignore[arg-type,return-value]  # noqa: SIM115


class _SinkWriter(py7zr.io.Py7zIO):
    """py7zr writes a member here; when it closes it, the walk scans it."""

    def __init__(self, walk: ArchiveScan, sink: MemberSink) -> None:
        self.walk = walk
        self.sink = sink

    def write(self, s: bytes | bytearray) -> int:
        return self.sink.write(bytes(s))

    def read(self, size: int | None = None) -> bytes:
        return b""

    def seek(self, offset: int, whence: int = 0) -> int:
        return 0

    def flush(self) -> None:
        return None

    def size(self) -> int:
        return self.sink.size

    def close(self) -> None:
        self.walk.finish(self.sink)


class _SinkFactory(py7zr.io.WriterFactory):
    def __init__(self, walk: ArchiveScan, prefix: str, sizes: dict[str, int]) -> None:
        self.walk = walk
        self.prefix = prefix
        self.sizes = sizes

    def create(self, filename: str) -> py7zr.io.Py7zIO:
        path = self.prefix + filename
        self.walk.budget.member(path, self.sizes.get(filename))
        return _SinkWriter(self.walk, self.walk.new_sink(path))


def walk_7z(source: BinaryIO, walk: ArchiveScan, prefix: str) -> None:
    """7z (LZMA, LZMA2, BZip2, Deflate, PPMd, AES-256 with a password); members are unpacked in
    archive order (7z is usually solid)."""
    where = prefix.rstrip("/")
    candidates: list[str | None] = [None, *walk.passwords]
    failure = ""
    for password in candidates:
        source.seek(0)
        try:
            with py7zr.SevenZipFile(source, password=password) as archive:
                if password is None and archive.needs_password():
                    failure = NO_PASSWORD
                    continue
                sizes = {info.filename: info.uncompressed for info in archive.list() if not info.is_directory}
                archive.extractall(factory=_SinkFactory(walk, prefix, sizes))
            return
        except (LimitReached, StopWalk):
            raise
        except py7zr.exceptions.PasswordRequired:
            failure = NO_PASSWORD
        except Exception as exc:  # py7zr fails in many ways on a wrong key or a damaged archive
            if password is None and failure != NO_PASSWORD:
                walk.problem(where, Verdict.NOT_SCANNED, f"corrupt 7z archive: {exc or type(exc).__name__}")
                return
            failure = WRONG_PASSWORD
    if walk.passwords and failure:
        failure = WRONG_PASSWORD
    walk.problem(where, Verdict.NOT_SCANNED, failure or NO_PASSWORD)
