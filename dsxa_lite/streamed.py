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
With a :class:`~dsxa_lite.yara_worker.YaraWorker`, the windows are scanned in a child process, out
of this process's GIL (yara-x holds it while scanning); without one, in the feeding thread.
"""

from __future__ import annotations

from collections.abc import Callable

from dsxa_lite.engines import Hit, ScanTimeout
from dsxa_lite.ruleset import RuleSet
from dsxa_lite.yara_worker import YaraWorker, YaraWorkerError


class StreamedScan:
    """YARA over a body of ``size`` bytes, window by window as its bytes are fed."""

    def __init__(
        self,
        ruleset: RuleSet,
        file_type: str,
        size: int,
        release: Callable[[YaraWorker | None], None],
        worker: YaraWorker | None = None,
    ) -> None:
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
        self._error: YaraWorkerError | None = None
        self._worker = worker
        self._release: Callable[[YaraWorker | None], None] | None = release

    @property
    def done(self) -> bool:
        """A hit, a timeout or a failed worker ends the scan: later bytes are only hashed (by the
        caller)."""
        return self._hit is not None or self._timeout is not None or self._error is not None

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
        """The body ended: scan what no window covered yet, and wait for every answer (blocking)."""
        if not self.done and self._held and self._offset + self._held > self._scanned_to:
            self._scan(self._parts, self._offset)
        self._parts, self._held = [], 0
        worker = self._worker
        try:
            while worker is not None and worker.outstanding:
                self._take_answer(worker)
        except YaraWorkerError as exc:
            self._error = exc

    def result(self) -> Hit | None:
        """The first YARA hit in window order, or None; raises the scan's timeout, or the
        worker's failure."""
        if self._error is not None:
            raise self._error
        if self._timeout is not None:
            raise self._timeout
        return self._hit

    def close(self) -> None:
        """Give the streaming slot (and the worker) back, once, and drop what is held."""
        self._parts, self._held = [], 0
        release, self._release = self._release, None
        if release is not None:
            release(self._worker)

    def _scan_full_window(self) -> None:
        parts = self._parts
        self._parts = []
        # the next window starts one step further and repeats the last `overlap` bytes
        kept = _tail(parts, self._overlap)
        self._scan(parts, self._offset)
        self._scanned_to = self._offset + self._window
        self._parts = [kept] if kept else []
        self._held = len(kept)
        self._offset += self._window - self._overlap

    def _scan(self, parts: list[bytes], offset: int) -> None:
        worker = self._worker
        if worker is None:
            data = b"".join(parts)
            del parts[:]  # not held twice while YARA scans
            try:
                self._hit = self.ruleset.yara.scan_window(data, offset, self.file_type, self.size)
            except ScanTimeout as exc:
                self._timeout = exc
            return
        try:
            while worker.outstanding >= 2:  # both buffers in use: wait for the older window
                self._take_answer(worker)
            if self.done:
                return
            worker.send(parts, offset, self.file_type, self.size)  # copied into its buffer
            while not self.done and worker.ready():  # answers already in: no waiting
                self._take_answer(worker)
        except YaraWorkerError as exc:
            self._error = exc

    def _take_answer(self, worker: YaraWorker) -> None:
        """The next window's answer; once the scan is decided, later answers are only drained."""
        try:
            hit = worker.receive()
        except ScanTimeout as exc:
            if not self.done:
                self._timeout = exc
            return
        if hit is not None and not self.done:
            self._hit = hit


def _tail(parts: list[bytes], n: int) -> bytes:
    """The last ``n`` bytes of ``parts`` joined."""
    if n <= 0:
        return b""
    tail: list[bytes] = []
    for part in reversed(parts):
        tail.append(part[-n:] if len(part) > n else part)
        n -= len(tail[-1])
        if n <= 0:
            break
    return b"".join(reversed(tail))
