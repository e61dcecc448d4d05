"""One function per archive format: list the members of a source and hand each to the walk.

Each reads its source sequentially or through the format's own index (zip's central directory,
7z's header) and never holds a whole member: members are read in chunks by
:meth:`ArchiveScan.read_member` (7z writes them through :class:`_SinkWriter`).
"""

from __future__ import annotations

import bz2
import gzip
import io
import lzma
import stat
import struct
import tarfile
import threading
import zipfile
import zlib
from collections.abc import Callable
from typing import IO, TYPE_CHECKING, BinaryIO, cast

import py7zr
import py7zr.archiveinfo
import py7zr.exceptions
import py7zr.io
import py7zr.py7zr
import pyzipper

from dsxa_lite.archives.limits import LimitReached, StopWalk
from dsxa_lite.filetype import (
    SEVEN_ZIP_SEARCH_BYTES,
    ZIP_CENTRAL_ENTRY,
    ZipDirectory,
    looks_like_tar,
    seven_zip_start,
    zip_directory,
)
from dsxa_lite.zip_tail import Shifted
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


def _describe(exc: BaseException) -> str:
    return str(exc) or type(exc).__name__


def source_reader(source: BinaryIO) -> Callable[[int, int], bytes]:
    """``read_at(offset, length)`` over a seekable ``source``."""

    def read_at(offset: int, length: int) -> bytes:
        source.seek(offset)
        return source.read(length)

    return read_at


def source_size(source: BinaryIO) -> int:
    return source.seek(0, 2)


_CENTRAL_ENTRY_SIZE = 46
_LISTING_CHUNK = 1024 * 1024
_UTF8_NAME = 0x800  # general purpose bit 11 (APPNOTE 4.4.4)


def _entry_past(source: BinaryIO, directory: ZipDirectory, allowed: int) -> str | None:
    """The name of the first entry past ``allowed`` in the central directory (read the way
    zipfile reads it, in bounded chunks, without building its entries), or None when it lists
    no more. Directories count: each costs as much to list as a file."""
    if directory.size < (allowed + 1) * _CENTRAL_ENTRY_SIZE:
        return None  # too small to hold more
    buffer = b""
    buffer_at = 0  # offset in the directory of buffer[0]
    offset = count = 0

    def have(length: int) -> bool:
        nonlocal buffer, buffer_at
        end = buffer_at + len(buffer)
        if offset + length <= end:
            return True
        keep = buffer[offset - buffer_at :] if offset < end else b""
        start = max(offset, end)
        source.seek(directory.start + start)
        buffer = keep + source.read(max(_LISTING_CHUNK, offset + length - start))
        buffer_at = offset
        return offset + length <= buffer_at + len(buffer)

    while offset < directory.size:
        if not have(_CENTRAL_ENTRY_SIZE):
            return None
        at = offset - buffer_at
        if buffer[at : at + 4] != ZIP_CENTRAL_ENTRY:
            return None  # zipfile refuses it as damaged
        (flags,) = struct.unpack_from("<H", buffer, at + 8)
        name_length, extra_length, comment_length = struct.unpack_from("<3H", buffer, at + 28)
        count += 1
        if count > allowed:
            if not have(_CENTRAL_ENTRY_SIZE + name_length):
                return None
            at = offset - buffer_at + _CENTRAL_ENTRY_SIZE
            raw = buffer[at : at + name_length]
            name = raw.decode("utf-8", "replace") if flags & _UTF8_NAME else raw.decode("cp437")
            return name.split("\0", 1)[0]
        offset += _CENTRAL_ENTRY_SIZE + name_length + extra_length + comment_length
    return None


def _check_listing(source: BinaryIO, walk: ArchiveScan, prefix: str) -> None:
    """Refuse, before zipfile builds an entry for each, a central directory listing more entries
    than the member limit has left (a small file can list millions: their entries, not their
    bytes, would fill the memory)."""
    directory = zip_directory(source_reader(source), source_size(source))
    if directory is None:
        return
    allowed = walk.budget.members_left()
    if directory.entries <= allowed and directory.size < (allowed + 1) * _CENTRAL_ENTRY_SIZE:
        return
    name = _entry_past(source, directory, allowed)
    if name is not None:
        raise walk.budget.too_many_members(prefix + name)


class _DeferredIntegrity:
    """A zip member read with its CRC-32 (and AES HMAC) check held back until its last byte is
    out: zipfile raises it on the final read, losing that read's bytes, while unzip and 7-Zip
    still extract a member whose check fails. The walk scans them, then reports the failure."""

    def __init__(self, opened: BinaryIO) -> None:
        self.opened = opened
        self.failure: Exception | None = None
        check = opened.check_integrity  # type: ignore[attr-defined]

        def deferred() -> None:
            try:
                check()
            except Exception as exc:  # BadZipFile (CRC, HMAC) and whatever a damaged trailer raises
                self.failure = exc

        opened.check_integrity = deferred  # type: ignore[attr-defined]

    def read1(self, size: int = -1, /) -> bytes:
        data = self.opened.read1(size)  # type: ignore[attr-defined]
        if not data and self.failure is not None:
            raise self.failure
        return data

    read = read1


def _walk_encrypted(
    archive: pyzipper.AESZipFile, info: zipfile.ZipInfo, walk: ArchiveScan, path: str
) -> None:
    """An encrypted member, with each password in turn: a wrong ZipCrypto password passes its
    one-byte check one time in 256, and only the member's CRC then tells it apart, so a password
    whose member fails to unpack makes way for the next."""
    if not walk.passwords:
        walk.problem(path, Verdict.NOT_SCANNED, NO_PASSWORD)
        return
    failed: tuple[MemberSink, Exception] | None = None
    try:
        for password in walk.passwords:
            try:
                opened = archive.open(info, pwd=password.encode())
            except RuntimeError:  # the password check (ZipCrypto check byte, AES verifier) failed
                continue
            with opened:
                sink, failure = walk.collect(path, _DeferredIntegrity(opened))
            if failed is not None:
                failed[0].discard()
                failed = None
            if failure is None:
                walk.finish(sink)
                return
            failed = (sink, failure)
    except BaseException:
        if failed is not None:
            failed[0].discard()
        raise
    if failed is None:
        walk.problem(path, Verdict.NOT_SCANNED, WRONG_PASSWORD)
        return
    walk.finish_damaged(*failed)


def walk_zip(source: BinaryIO, walk: ArchiveScan, prefix: str) -> None:
    """ZIP, OOXML included: stored, deflate, bzip2, lzma; ZipCrypto and WinZip AES (pyzipper).

    zipfile raises many kinds of exception on damaged input (BadZipFile, NotImplementedError for
    an odd version field, IndexError, KeyError, zlib and struct errors…): each is the archive's or
    the member's problem, never a failed scan. Bytes in front of the archive are skipped, as
    zipfile and unzip skip them (the archive is found from its end).
    """
    try:
        _check_listing(source, walk, prefix)
        source.seek(0)
        archive = pyzipper.AESZipFile(source)
    except (LimitReached, StopWalk):
        raise
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
                    _walk_encrypted(archive, info, walk, path)
                    continue
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
                walk.read_member(path, _DeferredIntegrity(opened))


#: the largest GNU long name or link, or pax header, a tar may carry: tarfile reads each whole into
#: memory before the member it describes (a 10 KB .tar.xz named a member with 64 MiB), so a larger
#: one is refused as an archive bomb before it is read (GNU tar's names are PATH_MAX, 4 KiB, long)
TAR_EXTENDED_HEADER_BYTES = 1024 * 1024
# pax and GNU long-name headers in a row before one member: tarfile reads each chain recursively
# (a few thousand exhaust Python's stack); a member has at most a global, a pax, a long name and a
# long link header
_TAR_EXTENDED_CHAIN = 16
_TAR_EXTENDED = frozenset(
    {
        tarfile.GNUTYPE_LONGNAME,
        tarfile.GNUTYPE_LONGLINK,
        tarfile.XHDTYPE,
        tarfile.XGLTYPE,
        tarfile.SOLARIS_XHDTYPE,
    }
)


class _TarStream:
    """The bytes tarfile reads from: each read checks the walk's time, and what tarfile reads
    besides the member data the walk takes (headers, long names, pax records, padding, blocks
    skipped, members not read) counts as unpacked bytes, so that a stream of headers alone
    reaches the byte and ratio limits (a member's data counts as its sink takes it)."""

    def __init__(self, source: BinaryIO, walk: ArchiveScan, where: str) -> None:
        self.source = source
        self.budget = walk.budget
        self.where = where
        self.read_bytes = 0
        self.member_bytes = 0  # of which member data the walk took
        self.counted = 0  # of which counted here
        self.in_member = False
        self.skipped = 0  # bytes of invalid headers skipped

    def read(self, size: int = -1, /) -> bytes:
        data = self.source.read(size)
        self.read_bytes += len(data)
        extra = self.read_bytes - self.member_bytes - self.counted
        if self.in_member or extra <= 0:
            self.budget.check_time(self.where)
        else:
            self.counted += extra
            self.budget.add(self.where, extra)
        return data


class _TarMember:
    """A member's reader: the bytes it takes from the stream (at most ``stored``, the member's
    blocks: a sparse member's holes are not in the stream) are the member's, counted by its sink."""

    def __init__(self, reader: IO[bytes], stream: _TarStream, stored: int) -> None:
        self.reader = reader
        self.stream = stream
        self.left = stored

    def read1(self, size: int = -1, /) -> bytes:
        self.stream.in_member = True
        try:
            data = self.reader.read1(size)  # type: ignore[attr-defined]
        finally:
            self.stream.in_member = False
        taken = min(len(data), self.left)
        self.left -= taken
        self.stream.member_bytes += taken
        return data

    read = read1


def _tar_header(walk: ArchiveScan, stream: _TarStream) -> type[tarfile.TarInfo]:
    """tarfile's header class for one walk: an invalid header is counted (tarfile then skips it,
    as GNU tar skips to the next header), an extended header too large or a chain of them too long
    is refused before tarfile reads it."""
    chain = 0
    global_bytes = 0

    class Header(tarfile.TarInfo):
        @classmethod
        def frombuf(cls, buf: bytes | bytearray, encoding: str, errors: str) -> Header:
            nonlocal chain, global_bytes
            try:
                info = super().frombuf(buf, encoding, errors)
            except tarfile.HeaderError:
                if buf.count(0) < len(buf):  # not an end-of-archive block, nor the end of the data
                    stream.skipped += len(buf)
                raise
            if info.type not in _TAR_EXTENDED:
                chain = 0
                return info
            chain += 1
            global_bytes += info.size if info.type == tarfile.XGLTYPE else 0
            if max(info.size, global_bytes) > TAR_EXTENDED_HEADER_BYTES:
                what = f"tar extended header over {TAR_EXTENDED_HEADER_BYTES} bytes"
                raise walk.budget.bomb(what, stream.where)
            if chain > _TAR_EXTENDED_CHAIN:
                raise tarfile.ReadError(f"more than {_TAR_EXTENDED_CHAIN} extended headers in a row")
            return info

    return Header


def walk_tar(source: BinaryIO, walk: ArchiveScan, prefix: str) -> None:
    """TAR (V7, ustar, GNU, pax; sparse members included), read as a stream: regular files, and
    members of a type tarfile does not know, which GNU tar extracts as regular files (so does
    tarfile's ``extractfile``); links, directories and devices hold no bytes, yet count as members.

    The stream is read to its end, as ``tar --ignore-zeros`` reads it: an invalid header is
    skipped, as GNU tar skips to the next header, and what follows is scanned; the archive is then
    Not Scanned (its skipped bytes may be something another extractor reads), unless a member is
    Malicious. Headers, padding and skipped blocks count as unpacked bytes (:class:`_TarStream`)."""
    where = prefix.rstrip("/")
    stream = _TarStream(source, walk, where or "the archive")
    header = _tar_header(walk, stream)
    try:
        tar_stream = cast(BinaryIO, stream)  # tarfile reads it only
        with tarfile.open(fileobj=tar_stream, mode="r|", ignore_zeros=True, tarinfo=header) as archive:
            # tarfile keeps every header it reads in this list (83 MiB for 200,000 directories)
            read: list[tarfile.TarInfo] = getattr(archive, "members", [])
            while (info := archive.next()) is not None:
                read.clear()
                path = prefix + info.name
                stream.where = path
                regular = info.isfile() or info.type not in tarfile.SUPPORTED_TYPES
                walk.budget.member(path, info.size if regular else None)
                reader = archive.extractfile(info) if regular else None
                if reader is not None:
                    stored = archive.offset - info.offset_data
                    walk.read_member(path, _TarMember(reader, stream, stored))
    except (LimitReached, StopWalk):
        raise
    except (tarfile.TarError, OSError, EOFError, ValueError, zlib.error, lzma.LZMAError) as exc:
        walk.problem(where, Verdict.NOT_SCANNED, f"corrupt TAR archive: {_describe(exc)}")
        return
    if stream.skipped:
        walk.problem(
            where,
            Verdict.NOT_SCANNED,
            f"corrupt TAR archive: {stream.skipped} bytes of invalid headers skipped",
        )


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


def _read_start(stream: BinaryIO, size: int) -> tuple[bytes, Exception | None]:
    """Up to ``size`` first bytes of a decompressed stream, and the error that cut them short."""
    data = b""
    try:
        while len(data) < size:
            chunk = stream.read1(size - len(data))  # type: ignore[attr-defined]
            if not chunk:
                break
            data += chunk
    except Exception as exc:  # OSError (BadGzipFile…), EOFError, LZMAError, zlib.error…
        return data, exc
    return data, None


def _walk_compressed(
    source: BinaryIO, walk: ArchiveScan, prefix: str, opener: Callable[[BinaryIO], BinaryIO], name: str
) -> None:
    """A compressed stream: a tar inside (ustar magic or V7 checksum) is walked as a tar,
    anything else is one member. A stream that breaks off (trailing garbage, a bad trailer
    CRC) still has what came out before scanned."""
    source.seek(0)
    stream = opener(source)
    first, failure = _read_start(stream, 512)
    if failure is not None and not first:
        walk.problem(
            prefix.rstrip("/"), Verdict.NOT_SCANNED, f"corrupt compressed stream: {_describe(failure)}"
        )
        return
    if failure is None and len(first) == 512 and looks_like_tar(first):
        source.seek(0)
        walk_tar(opener(source), walk, prefix)
        return
    path = prefix + name
    walk.budget.member(path, None)
    walk.read_member(path, _Prepended(first, stream, failure))


class _Prepended:
    """``head`` then the rest of ``stream`` (or ``failure``, where reading the head ended on
    one), as a reader."""

    def __init__(self, head: bytes, stream: BinaryIO, failure: Exception | None = None) -> None:
        self.head = head
        self.stream = stream
        self.failure = failure

    def read1(self, size: int = -1, /) -> bytes:
        if self.head:
            head, self.head = self.head, b""
            return head
        if self.failure is not None:
            raise self.failure
        return self.stream.read1(size)  # type: ignore[attr-defined]

    read = read1


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


def _lzma_alone(source: BinaryIO) -> BinaryIO:
    return lzma.LZMAFile(source, format=lzma.FORMAT_ALONE)  # type: ignore[return-value]


def walk_lzma(source: BinaryIO, walk: ArchiveScan, prefix: str) -> None:
    """LZMA-alone (.lzma; a .tar.lzma is walked as a tar)."""
    _walk_compressed(source, walk, prefix, _lzma_alone, "content")


class _SinkWriter(py7zr.io.Py7zIO):
    """py7zr writes a member here; when it closes it, the walk scans it."""

    def __init__(self, factory: _SinkFactory, sink: MemberSink) -> None:
        self.factory = factory
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
        if self.sink.size:
            self.factory.unpacked += 1
        self.factory.walk.finish(self.sink)


class _SinkFactory(py7zr.io.WriterFactory):
    def __init__(self, walk: ArchiveScan, prefix: str, sizes: dict[str, int]) -> None:
        self.walk = walk
        self.prefix = prefix
        self.sizes = sizes
        self.unpacked = 0  # members that came out with bytes

    def create(self, filename: str) -> py7zr.io.Py7zIO:
        path = self.prefix + filename
        self.walk.budget.member(path, self.sizes.get(filename))
        return _SinkWriter(self, self.walk.new_sink(path))


# an entry's Windows attributes, for one py7zr would skip: a plain file (FILE_ATTRIBUTE_ARCHIVE)
_PLAIN_FILE_ATTRIBUTES = stat.FILE_ATTRIBUTE_ARCHIVE


def _entries_with_data(archive: py7zr.SevenZipFile) -> int:
    """How many entries of ``archive`` hold bytes, each made one py7zr hands to the walk: 7-Zip
    takes an entry with a data stream for a file whatever its attributes say, while py7zr skips
    one whose attributes say directory, or socket (its Unix mode), so that its bytes would never
    be scanned."""
    count = 0
    for entry in archive.files:
        if entry.emptystream or not entry.uncompressed:
            continue
        count += 1
        if entry.is_directory or entry.is_socket:
            entry._file_info["attributes"] = _PLAIN_FILE_ATTRIBUTES
    return count


# py7zr builds a dict for each file its header lists (~1 KB each, all before the first member
# is unpacked): a 340 KB archive listing 200,000 empty files took 225 MB. Its header reader
# checks the file count through ``archiveinfo.check_count`` before building them; the walk that
# reads a header (this thread's) sets how many members it has left, and a larger count is
# refused there, as the member limit refuses it. Without that hook (another py7zr), the limit
# applies as the members are unpacked.
_SEVEN_ZIP_LISTING = threading.local()
_py7zr_check_count = getattr(py7zr.archiveinfo, "check_count", None)


def _bounded_check_count(
    file: BinaryIO, count: int, what: str, bits_per_entry: int = 8, hard_max: int | None = None
) -> int:
    walk: tuple[ArchiveScan, str] | None = getattr(_SEVEN_ZIP_LISTING, "walk", None)
    if what == "numfiles" and walk is not None and count > walk[0].budget.members_left():
        raise walk[0].budget.too_many_members(walk[1])
    return _py7zr_check_count(file, count, what, bits_per_entry, hard_max)  # type: ignore[misc]


if _py7zr_check_count is not None:
    py7zr.archiveinfo.check_count = _bounded_check_count


#: the walker's kind for a body with a 7z archive inside it, past its first byte
SEVEN_ZIP_INSIDE = "7Z inside"
#: the walker's kinds for a body with an archive this scanner does not unpack inside it
#: (``filetype.unopened_archive_inside``): the walk answers Unsupported File Type
RAR_INSIDE = "RAR inside"
CAB_INSIDE = "CAB inside"
# the search window, and room past it for the header of an archive that starts at its very end
_SEARCH_READ_BYTES = SEVEN_ZIP_SEARCH_BYTES + 4096


def search_window(source: BinaryIO) -> bytes:
    """The first bytes of ``source`` in which an archive inside it is looked for."""
    source.seek(0)
    return source.read(_SEARCH_READ_BYTES)


def seven_zip_in(source: BinaryIO) -> int | None:
    """Where a 7z archive starts inside ``source`` past its first byte (see ``seven_zip_start``)."""
    return seven_zip_start(search_window(source), source_size(source))


def _not_unpacked(name: str) -> Callable[[BinaryIO, ArchiveScan, str], None]:
    def walk_inside(source: BinaryIO, walk: ArchiveScan, prefix: str) -> None:
        walk.problem(prefix.rstrip("/"), Verdict.UNSUPPORTED, f"{name} archives are not unpacked")

    return walk_inside


#: a RAR (a WinRAR self-extractor's) or a cabinet (an IExpress self-extractor's) inside a program:
#: not unpacked, so Unsupported File Type, as a RAR or CAB file sent on its own
walk_rar_inside = _not_unpacked("RAR")
walk_cab_inside = _not_unpacked("CAB")


def walk_7z_inside(source: BinaryIO, walk: ArchiveScan, prefix: str) -> None:
    """The 7z archive a file holds after other bytes (a 7-Zip self-extractor's stub), walked from
    its signature header on, as a file of its own (py7zr reads the signature header at offset 0)."""
    start = seven_zip_in(source)
    if start is not None:
        walk_7z(
            io.BufferedReader(Shifted(source, -start, source_size(source) - start), 1 << 20), walk, prefix
        )


def walk_7z(source: BinaryIO, walk: ArchiveScan, prefix: str) -> None:
    """7z (LZMA, LZMA2, BZip2, Deflate, PPMd, AES-256 with a password); members are unpacked in
    archive order (7z is usually solid). A header listing more files than the member limit has
    left is refused before py7zr builds their entries."""
    where = prefix.rstrip("/")
    candidates: list[str | None] = [None, *walk.passwords]
    outer = getattr(_SEVEN_ZIP_LISTING, "walk", None)
    _SEVEN_ZIP_LISTING.walk = (walk, where or "the archive")
    try:
        _walk_7z(source, walk, prefix, where, candidates)
    finally:
        _SEVEN_ZIP_LISTING.walk = outer


def _walk_7z(
    source: BinaryIO, walk: ArchiveScan, prefix: str, where: str, candidates: list[str | None]
) -> None:
    failure = ""
    for password in candidates:
        source.seek(0)
        try:
            with py7zr.SevenZipFile(source, password=password) as archive:
                if password is None and archive.needs_password():
                    failure = NO_PASSWORD
                    continue
                with_data = _entries_with_data(archive)
                sizes = {info.filename: info.uncompressed for info in archive.list() if not info.is_directory}
                factory = _SinkFactory(walk, prefix, sizes)
                archive.extractall(factory=factory)
            if factory.unpacked < with_data:  # another entry py7zr left out: its bytes were not seen
                missing = with_data - factory.unpacked
                walk.problem(where, Verdict.NOT_SCANNED, f"{missing} 7z member(s) with data not unpacked")
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
