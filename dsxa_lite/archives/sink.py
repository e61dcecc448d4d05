"""Where an unpacked member goes while it is read: memory up to a threshold, then an unnamed
temp file; hashed and counted against the walk's budget on the way."""

from __future__ import annotations

import hashlib
import tempfile
from pathlib import Path
from typing import BinaryIO

from dsxa_lite.archives.limits import Budget
from dsxa_lite.body import ReceivedBody
from dsxa_lite.engines import HEAD_BYTES


class MemberSink:
    """Collects one member's bytes; :meth:`finish` turns them into a :class:`ReceivedBody`."""

    def __init__(self, path: str, budget: Budget, spool_threshold: int, spool_dir: Path | None) -> None:
        self.path = path
        self.budget = budget
        self.spool_threshold = spool_threshold
        self.spool_dir = spool_dir
        self.digest = hashlib.sha256()
        self.size = 0
        self.head = b""
        self.parts: list[bytes] = []
        self.spool: BinaryIO | None = None

    def write(self, chunk: bytes) -> int:
        """Take ``chunk`` (raises :class:`LimitReached` past a limit)."""
        if not chunk:
            return 0
        self.budget.add(self.path, len(chunk))
        self.digest.update(chunk)
        self.size += len(chunk)
        if len(self.head) < HEAD_BYTES:
            self.head += chunk[: HEAD_BYTES - len(self.head)]
        if self.spool is not None:
            self.spool.write(chunk)
        elif self.size > self.spool_threshold:
            # closed by finish() (through the body) or discard()
            self.spool = tempfile.TemporaryFile(prefix="dsxa-lite-member-", dir=self.spool_dir)  # noqa: SIM115
            self.spool.writelines(self.parts)
            self.spool.write(chunk)
            self.parts = []
        else:
            self.parts.append(bytes(chunk))
        return len(chunk)

    def finish(self) -> ReceivedBody:
        """The member as a body (the caller closes it)."""
        if self.spool is not None:
            self.spool.flush()
            return ReceivedBody(self.digest.hexdigest(), self.size, self.head, spool=self.spool)
        data = self.parts[0] if len(self.parts) == 1 else b"".join(self.parts)
        self.parts = []
        return ReceivedBody(self.digest.hexdigest(), self.size, self.head, data=data)

    def discard(self) -> None:
        """Drop what was collected (a member abandoned half-way)."""
        self.parts = []
        if self.spool is not None:
            self.spool.close()
            self.spool = None
