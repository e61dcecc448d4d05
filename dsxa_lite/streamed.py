"""A large plain body scanned as it arrives, instead of spooled to disk and read back.

A body past the spool threshold used to be written to a temp file, then read again window by
window for YARA. For a file that is not an archive (nothing to unpack) and with no clamd to send
it to, YARA is the only engine that needs its bytes (EICAR needs the first bytes, the block list
the hash), so the windows are scanned as they arrive: the same windows, at the same offsets, with
the same globals, as :meth:`~dsxa_lite.engines.yara.YaraEngine.scan` reads from a spool. The
file's size (``dsxa_file_size``) must be known before the first window, so only a body with a
``Content-Length`` is streamed.

Writing 2 GiB to the spool cost this machine's disk 5.7 CPU seconds, more than hashing and YARA
together (docs/performance.md). Memory stays bounded: at most one window and the part of the next
one received meanwhile, for each of at most ``LARGE_SCAN_CONCURRENCY`` streamed bodies; any other
large body spools as before.

One :class:`StreamedScan` is fed by one thread at a time, in arrival order
(:func:`dsxa_lite.body.receive_body` runs each batch in a worker thread while the next arrives).
"""

from __future__ import annotations

from collections.abc import Callable

from dsxa_lite.engines import Hit, ScanTimeout
from dsxa_lite.ruleset import RuleSet


class StreamedScan:
    """YARA over a body of ``size`` bytes, window by window as its bytes are fed."""

    def __init__(self, ruleset: RuleSet, file_type: str, size: int, release: Callable[[], None]) -> None:
        self.ruleset = ruleset  # the whole scan uses the rule set it started with
        self.file_type = file_type
        self.size = size
        yara = ruleset.yara
        self._window = yara.window_bytes
        self._overlap = yara.overlap_bytes
        self._parts: list[bytes] = []
        self._held = 0  # bytes in _parts, which start at file offset _offset
        self._offset = 0
        self._scanned_to = 0  # end of the last window scanned
        self._hit: Hit | None = None
        self._timeout: ScanTimeout | None = None
        self._release: Callable[[], None] | None = release

    @property
    def done(self) -> bool:
        """A hit or a timeout ends the scan: later bytes are only hashed (by the caller)."""
        return self._hit is not None or self._timeout is not None

    def feed(self, parts: list[bytes]) -> None:
        """The next bytes of the body; scans every window they complete (blocking)."""
        if self.done:
            return
        for part in parts:
            while part:
                room = self._window - self._held
                if len(part) < room:
                    self._parts.append(part)
                    self._held += len(part)
                    break
                self._parts.append(part[:room])
                self._held += room
                part = part[room:]
                self._scan_full_window()
                if self.done:
                    self._parts, self._held = [], 0
                    return

    def finish(self) -> None:
        """The body ended: scan what no window covered yet (blocking)."""
        if not self.done and self._held and self._offset + self._held > self._scanned_to:
            self._scan(b"".join(self._parts), self._offset)
        self._parts, self._held = [], 0

    def result(self) -> Hit | None:
        """The first YARA hit in window order, or None; raises the scan's timeout."""
        if self._timeout is not None:
            raise self._timeout
        return self._hit

    def close(self) -> None:
        """Give the streaming slot back (once) and drop what is held."""
        self._parts, self._held = [], 0
        release, self._release = self._release, None
        if release is not None:
            release()

    def _scan_full_window(self) -> None:
        window = b"".join(self._parts)
        self._parts = []  # not held twice while YARA scans
        self._scan(window, self._offset)
        self._scanned_to = self._offset + self._window
        # the next window starts one step further and repeats the last `overlap` bytes
        kept = window[self._window - self._overlap :] if self._overlap else b""
        self._parts = [kept] if kept else []
        self._held = len(kept)
        self._offset += self._window - self._overlap

    def _scan(self, data: bytes, offset: int) -> None:
        try:
            self._hit = self.ruleset.yara.scan_window(data, offset, self.file_type, self.size)
        except ScanTimeout as exc:
            self._timeout = exc
