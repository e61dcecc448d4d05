"""What a streamed body keeps so that a ZIP at its end can still be walked.

A large plain body is scanned as it arrives and not kept (:mod:`dsxa_lite.streamed`), yet a ZIP
may end it, whatever its head says (a self-extractor, a polyglot): zipfile, unzip and 7-Zip find
such an archive from its end record. Every member of a ZIP they can read starts with a local
file header (``PK\\x03\\x04``), so the archive lies wholly after the body's first one:
:class:`ZipTail` writes the body to disk from that signature on, and nothing when it never
appears (most large files). The signature alone decides, whatever the header's fields say:
extractors read a member's method and sizes from the central directory, not from its local
header, so a check of those fields could be evaded.
"""

from __future__ import annotations

import io
import re
from collections.abc import Callable
from typing import BinaryIO

ZIP_LOCAL_HEADER = b"PK\x03\x04"
# every byte of a streamed body is searched: re's literal search runs ~1.5x bytes.find's speed here
# (3 against 2 GiB/s, zeros or random bytes)
_LOCAL_HEADER = re.compile(re.escape(ZIP_LOCAL_HEADER))
_CARRY = len(ZIP_LOCAL_HEADER) - 1


class ZipTail:
    """Fed a body's bytes in order (one thread at a time); keeps them on disk from the first ZIP
    local file header on. ``offset`` is where that is in the body, None while not seen."""

    def __init__(self, open_spool: Callable[[], BinaryIO]) -> None:
        self._open_spool = open_spool  # the receiver's own (dsxa_lite.body: an unnamed temp file)
        self.offset: int | None = None
        self.spool: BinaryIO | None = None
        self._received = 0  # bytes fed so far
        self._carry = b""  # the last bytes fed while looking: a signature may straddle two parts

    def take(self, parts: list[bytes]) -> None:
        for part in parts:
            if self.spool is not None:
                self.spool.write(part)
            elif part:
                self._look(part)
            self._received += len(part)

    def _look(self, part: bytes) -> None:
        carry = self._carry
        at = (carry + part[:_CARRY]).find(ZIP_LOCAL_HEADER)  # across the previous part and this one
        if at >= 0:
            self._open(self._received - len(carry) + at)
            assert self.spool is not None
            self.spool.write(carry[at:])
            self.spool.write(part)
            return
        found = _LOCAL_HEADER.search(part)
        if found is not None:
            at = found.start()
            self._open(self._received + at)
            assert self.spool is not None
            self.spool.write(memoryview(part)[at:])
            return
        self._carry = (self._carry + part)[-_CARRY:] if len(part) < _CARRY else part[-_CARRY:]

    def _open(self, offset: int) -> None:
        self.offset = offset
        self.spool = self._open_spool()
        self._carry = b""

    def finish(self) -> None:
        if self.spool is not None:
            self.spool.flush()

    def source(self, size: int) -> BinaryIO | None:
        """The body (of ``size`` bytes) as a file, its bytes before ``offset`` read as zeros (they
        were not kept), or None when no local header was seen: no ZIP member can be in it."""
        if self.spool is None or self.offset is None:
            return None
        return io.BufferedReader(Shifted(self.spool, self.offset, size))

    def close(self) -> None:
        if self.spool is not None:
            self.spool.close()
            self.spool = None


class Shifted(io.RawIOBase):
    """A read-only file of ``size`` bytes whose bytes from ``offset`` on are ``spool``'s (those
    before it read as zeros). A negative ``offset`` starts the file ``-offset`` bytes into ``spool``."""

    def __init__(self, spool: BinaryIO, offset: int, size: int) -> None:
        super().__init__()
        self._spool = spool
        self._offset = offset
        self._size = size
        self._position = 0

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        return self._position

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        base = {io.SEEK_SET: 0, io.SEEK_CUR: self._position, io.SEEK_END: self._size}[whence]
        if base + offset < 0:
            raise OSError(22, "negative seek position")
        self._position = base + offset
        return self._position

    def readinto(self, buffer: bytearray | memoryview) -> int:  # type: ignore[override]
        view = memoryview(buffer).cast("B")
        wanted = max(min(len(view), self._size - self._position), 0)
        done = 0
        if self._position < self._offset and wanted:
            done = min(wanted, self._offset - self._position)
            view[:done] = bytes(done)
        if done < wanted:
            self._spool.seek(self._position + done - self._offset)
            done += self._spool.readinto(view[done:wanted]) or 0  # type: ignore[attr-defined]
        self._position += done
        return done
