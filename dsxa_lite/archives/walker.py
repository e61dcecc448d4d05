"""One archive walk: members through the engines, nested archives opened in turn, the worst
verdict kept (see the package docstring)."""

from __future__ import annotations

import io
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO, Protocol

from dsxa_lite.archives import formats
from dsxa_lite.archives.limits import ARCHIVE_BOMB, ArchiveLimits, Budget, LimitReached, StopWalk
from dsxa_lite.archives.sink import MemberSink
from dsxa_lite.body import ReceivedBody
from dsxa_lite.engines import Hit, ScanInput, ScanTimeout
from dsxa_lite.filetype import (
    PROGRAM_MAGIC,
    ZIP_END,
    ZIP_TAIL_BYTES,
    detect_file_type,
    seven_zip_start,
    unopened_archive_inside,
    zip_directory,
)
from dsxa_lite.threats import ThreatType
from shared.models import Verdict

READ_CHUNK = 1024 * 1024


class Reader(Protocol):
    """What a member is read from: anything with ``read(size)``."""

    def read(self, size: int = -1, /) -> bytes: ...


_HANDLERS: dict[str, Callable[[BinaryIO, ArchiveScan, str], None]] = {
    "ZIP": formats.walk_zip,
    "OOXML Word": formats.walk_zip,
    "OOXML Excel": formats.walk_zip,
    "OOXML PowerPoint": formats.walk_zip,
    "TAR": formats.walk_tar,
    "GZIP": formats.walk_gzip,
    "BZIP2": formats.walk_bzip2,
    "XZ": formats.walk_xz,
    "7Z": formats.walk_7z,
    "LZMA": formats.walk_lzma,
    formats.SEVEN_ZIP_INSIDE: formats.walk_7z_inside,
    formats.RAR_INSIDE: formats.walk_rar_inside,
    formats.CAB_INSIDE: formats.walk_cab_inside,
}
CONTAINER_TYPES = frozenset(_HANDLERS)
ZIP_KINDS = frozenset(kind for kind, handler in _HANDLERS.items() if handler is formats.walk_zip)
#: joins the kinds of a body that holds more than one archive (``TAR+ZIP``: a ZIP appended to a tar)
KIND_SEPARATOR = "+"
_NOT_UNPACKED_INSIDE = {"RAR": formats.RAR_INSIDE, "CAB": formats.CAB_INSIDE}
# Recognised archive, compression and disk-image formats this scanner does not unpack, as
# dsxa_lite.filetype names them (puremagic's names past its own table): Unsupported File Type,
# never Benign, since what they hold is not seen. "TGZ" and "TAR.Z" are compress(1) (.Z) data:
# gzip is named GZIP first.
UNSUPPORTED_CONTAINERS = frozenset(
    {
        "RAR",
        "ZST",
        "LZ4",
        "Z",
        "TAR.Z",
        "TGZ",
        "LZ",
        "LZO",
        "LRZ",
        "CAB",
        "ARJ",
        "LZH",
        "ALZ",
        "ARC",
        "PAK",
        "ZOO",
        "SIT",
        "KGB",
        "CPIO",
        "UDEB",
        "AR",
        "RPM",
        "XAR",
        "WIM",
        "SWM",
        "ISO",
        "CSO",
        "ISZ",
        "DAA",
        "SQSH",
        "VHD",
        "VHDX",
        "VMDK",
        "VDI",
        "QCOW",
        "QCOW2",
    }
)


_SEVERITY = {
    Verdict.BENIGN: 0,
    Verdict.UNSUPPORTED: 1,
    Verdict.NOT_SCANNED: 2,
    Verdict.NON_COMPLIANT: 3,
    Verdict.MALICIOUS: 4,
}


@dataclass(frozen=True, slots=True)
class ArchiveOutcome:
    """The verdict of a walk (``Benign`` with an empty reason when nothing was found) and what
    it covered: members scanned (all levels) and their bytes."""

    verdict: Verdict
    reason: str
    threat_type: ThreatType | None
    files_scanned: int
    bytes_scanned: int


def _body_reader(body: ReceivedBody) -> Callable[[int, int], bytes] | None:
    if body.data is not None:
        data = body.data
        return lambda offset, length: data[offset : offset + length]
    source = _source(body)
    return formats.source_reader(source) if source is not None else None


def _source(body: ReceivedBody) -> BinaryIO | None:
    """The body as a file: its spool, or what a streamed body kept from its first ZIP local
    header on (None: it was not kept, or no ZIP member can be in it)."""
    if body.spool is not None:
        return body.spool
    if body.zip_tail is not None:
        return body.zip_tail.source(body.size)
    return None


def container_type(body: ReceivedBody, file_type: str) -> str | None:
    """The archive kind to walk ``body`` (whose head says ``file_type``) as, or None: its type
    when it is one of :data:`CONTAINER_TYPES`; for an executable, an archive that starts in it
    (a 7z: a 7-Zip self-extractor, 7-Zip finds the archive after the stub; a RAR or cabinet, which
    are not unpacked: WinRAR and IExpress self-extractors); and, unless its head is a ZIP already,
    ``ZIP`` when a ZIP ends the body, whatever comes before it (a self-extractor, a PNG/ZIP
    polyglot, a tar or 7z with a ZIP appended: zipfile and unzip find a ZIP from its end record).
    Several kinds are joined by :data:`KIND_SEPARATOR` and walked in turn. Formats of
    :data:`UNSUPPORTED_CONTAINERS` stay None."""
    if file_type in UNSUPPORTED_CONTAINERS:
        return None
    if file_type in CONTAINER_TYPES:
        if file_type in ZIP_KINDS or body.size < 22 or not _zip_ends(body):
            return file_type
        return file_type + KIND_SEPARATOR + "ZIP"
    if body.size < 22:
        return None
    kinds = []
    # a self-extractor is a program, then its archive: only programs are searched for an archive
    # inside, a pass over their first MiBs (7.7 % of dsxa_lite's CPU per plain file when every
    # body was searched for a 7z)
    if body.head.startswith(PROGRAM_MAGIC):
        kinds = _archives_inside(body)
    if _zip_ends(body):
        kinds.append("ZIP")
    return KIND_SEPARATOR.join(kinds) or None


def _zip_ends(body: ReceivedBody) -> bool:
    tail_start = max(body.size - ZIP_TAIL_BYTES, 0)
    if body.data is not None and body.data.rfind(ZIP_END, tail_start) < 0:
        return False  # most bodies, every scan: a search in place (rfind: twice find's speed here)
    read_at = _body_reader(body)
    if read_at is None or ZIP_END not in read_at(tail_start, body.size - tail_start):
        return False
    return zip_directory(read_at, body.size) is not None


def _archives_inside(body: ReceivedBody) -> list[str]:
    """The kinds of the archives that start inside a program's body (past its first byte)."""
    if body.data is not None:  # most bodies, every scan: a search in place
        window = body.data
    elif body.spool is not None:
        window = formats.search_window(body.spool)
    else:
        return []  # a streamed body keeps what follows a ZIP local header only (zip_tail.py)
    kinds = []
    if seven_zip_start(window, body.size) is not None:
        kinds.append(formats.SEVEN_ZIP_INSIDE)
    unopened = unopened_archive_inside(window, body.size)
    if unopened is not None:
        kinds.append(_NOT_UNPACKED_INSIDE[unopened])
    return kinds


def _open(body: ReceivedBody) -> BinaryIO:
    source = _source(body)
    if source is not None:
        source.seek(0)
        return source
    return io.BytesIO(body.data or b"")


class ArchiveScan:
    """Walks one archive with ``detect`` (the engines, first hit) under ``limits``."""

    def __init__(
        self,
        detect: Callable[[ScanInput], Hit | None],
        limits: ArchiveLimits,
        *,
        container_size: int,
        passwords: Sequence[str] = (),
        spool_threshold: int = 8 * 1024 * 1024,
        spool_dir: Path | None = None,
    ) -> None:
        self.detect = detect
        self.limits = limits
        self.passwords = list(passwords)
        self.spool_threshold = spool_threshold
        self.spool_dir = spool_dir
        self.budget = Budget(limits, container_size)
        self.depth = 0
        self.files_scanned = 0
        self.bytes_scanned = 0
        self._worst: tuple[Verdict, str, ThreatType | None] = (Verdict.BENIGN, "", None)

    def run(self, body: ReceivedBody, file_type: str) -> ArchiveOutcome:
        """Walk ``body`` as ``file_type``, a kind :func:`container_type` gave."""
        try:
            self.walk(body, file_type, "")
        except StopWalk:
            pass
        except LimitReached as exc:
            self._record(exc.verdict, exc.reason, None)
        verdict, reason, threat_type = self._worst
        return ArchiveOutcome(verdict, reason, threat_type, self.files_scanned, self.bytes_scanned)

    def _record(self, verdict: Verdict, reason: str, threat_type: ThreatType | None) -> None:
        if _SEVERITY[verdict] > _SEVERITY[self._worst[0]]:
            self._worst = (verdict, reason, threat_type)

    def problem(self, path: str, verdict: Verdict, reason: str) -> None:
        """Record a member (or archive) that could not be scanned; the walk goes on."""
        self._record(verdict, f"{reason} (at {path or 'the archive'})", None)

    def walk(self, body: ReceivedBody, kind: str, prefix: str) -> None:
        """Open ``body`` as a ``kind`` archive (or each of several: ``TAR+ZIP``) whose members
        are named ``prefix + name``."""
        self.depth += 1
        try:
            if self.depth > self.limits.max_depth:
                where = prefix.rstrip("/")
                raise LimitReached(
                    Verdict.NON_COMPLIANT,
                    f"{ARCHIVE_BOMB}: archives nested deeper than {self.limits.max_depth} levels (at {where})",
                )
            for part in kind.split(KIND_SEPARATOR):
                _HANDLERS[part](_open(body), self, prefix)
        finally:
            self.depth -= 1

    def new_sink(self, path: str) -> MemberSink:
        """A sink for the bytes of member ``path``."""
        return MemberSink(path, self.budget, self.spool_threshold, self.spool_dir)

    def collect(self, path: str, reader: Reader) -> tuple[MemberSink, Exception | None]:
        """Read member ``path`` chunk by chunk into a sink; the error that ended the read early,
        if any, comes with what was read before it. Each chunk is one unpacker step
        (``read1`` where the reader has it), so an error loses no bytes already unpacked."""
        sink = self.new_sink(path)
        read = getattr(reader, "read1", None) or reader.read
        try:
            while chunk := read(READ_CHUNK):
                sink.write(chunk)
        except LimitReached:
            sink.discard()
            raise
        except Exception as exc:  # unpackers raise many kinds on damaged data (see formats.walk_zip)
            return sink, exc
        return sink, None

    def read_member(self, path: str, reader: Reader) -> None:
        """Read member ``path`` chunk by chunk, then scan it."""
        sink, failure = self.collect(path, reader)
        if failure is None:
            self.finish(sink)
        else:
            self.finish_damaged(sink, failure)

    def finish_damaged(self, sink: MemberSink, failure: Exception) -> None:
        """A member whose unpacking failed part-way (a bad CRC, a broken stream, garbage after
        it): the bytes that came out are scanned all the same, as unzip, gzip and 7-Zip still
        write them out (a hit is Malicious), and the member is Not Scanned otherwise."""
        if sink.size:
            self.finish(sink)  # raises StopWalk on a hit
        else:
            sink.discard()
        self.problem(sink.path, Verdict.NOT_SCANNED, f"cannot unpack: {failure or type(failure).__name__}")

    def finish(self, sink: MemberSink) -> None:
        """Scan the member collected in ``sink`` (and walk it when it is an archive)."""
        body = sink.finish()
        try:
            self._scan_member(sink.path, body)
        finally:
            body.close()

    def _scan_member(self, path: str, body: ReceivedBody) -> None:
        file_type = detect_file_type(body.head)
        fd = body.spool.fileno() if body.spool is not None else None
        item = ScanInput(body.sha256, body.size, body.head, file_type, data=body.data, fd=fd)
        try:
            hit = self.detect(item)
        except ScanTimeout as exc:
            self.problem(path, Verdict.NOT_SCANNED, str(exc))
            return
        self.files_scanned += 1
        self.bytes_scanned += body.size
        if hit is not None:
            self._record(Verdict.MALICIOUS, f"{hit.reason} (in {path})", hit.threat_type)
            raise StopWalk
        kind = container_type(body, file_type)
        if kind is not None:
            self.walk(body, kind, path + "/")
        elif file_type in UNSUPPORTED_CONTAINERS:
            self.problem(path, Verdict.UNSUPPORTED, f"{file_type} archives are not unpacked")
