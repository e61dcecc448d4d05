"""Detection engines: each is one small class with one ``scan(item) -> Hit | None`` method.

The scan service runs them in order (EICAR, block list, YARA) and stops at the first hit. An
engine sees a :class:`ScanInput`: the body's hash, size, first bytes and detected type, plus the
whole content when it is held in memory, or a way to read any part of the spool file otherwise.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Protocol

from dsxa_lite.threats import ThreatType

HEAD_BYTES = 4096


class ScanTimeout(Exception):
    """An engine gave up on a file after its time limit."""


@dataclass(frozen=True, slots=True)
class ScanInput:
    """One file as the engines see it.

    Exactly one of ``data`` (the whole file, in memory) and ``fd`` (a spool file descriptor,
    read with :meth:`read_at`) is set.
    """

    sha256: str
    size: int
    head: bytes
    file_type: str
    data: bytes | None = None
    fd: int | None = None

    def read_at(self, offset: int, length: int) -> bytes:
        """``length`` bytes from ``offset`` (fewer at the end of the file)."""
        if self.data is not None:
            return self.data[offset : offset + length]
        assert self.fd is not None
        return os.pread(self.fd, length, offset)


@dataclass(frozen=True, slots=True)
class Hit:
    """A detection: which engine, which rule or hash, and what kind of threat."""

    engine: str
    name: str
    threat_type: ThreatType | None
    description: str = ""

    @property
    def reason(self) -> str:
        """The ``verdict_details.reason`` text: engine and rule or hash."""
        return f"{self.engine}: {self.name}"


class Engine(Protocol):
    """What the scan service needs from an engine."""

    name: str

    def scan(self, item: ScanInput) -> Hit | None:
        """Return a hit when ``item`` is detected, else None."""
        ...
