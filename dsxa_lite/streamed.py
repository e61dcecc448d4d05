"""A large plain body scanned as it arrives, instead of spooled to disk and read back.

A body past the spool threshold used to be written to a temp file, then read again window by
window for YARA. For a file that is not an archive (nothing to unpack) and with no clamd to send
it to, YARA is the only engine that needs its bytes (EICAR needs the first bytes, the block list
the hash), so the windows are scanned as they arrive: the same windows, at the same offsets, with
the same globals, as :meth:`~dsxa_lite.engines.yara.YaraEngine.scan` reads from a spool. The
file's size (``dsxa_file_size``) must be known before the first window, so only a body with a
``Content-Length`` is streamed.

Writing 2 GiB to the spool cost this machine's disk 5.7 CPU seconds, more than hashing and YARA
together (docs/performance.md). Memory stays bounded: with a YARA worker process, a body's bytes
go straight into the worker's two window buffers (shared memory), so this process holds only what
arrives while both are busy; without one, one window and the part of the next one received
meanwhile. Either way for each of at most ``LARGE_SCAN_CONCURRENCY`` streamed bodies; any other
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
from dsxa_lite.yara_worker import SLOTS, YaraWorker, YaraWorkerError


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
        self._parts: list[bytes] = []  # the window's bytes, when scanned in this process
        self._held = 0  # bytes of the current window (in _parts or the worker's buffer), from _offset
        self._open = False  # a window is open in the worker's buffer
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
        if self._worker is not None:
            self._feed_worker(self._worker, parts)
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
        worker = self._worker
        if not self.done and self._held and self._offset + self._held > self._scanned_to:
            if worker is not None:  # bytes past the last window's were written: its window is open
                self._send_window(worker)
            else:
                self._scan(self._parts, self._offset)
        self._parts, self._held = [], 0
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

    def _feed_worker(self, worker: YaraWorker, parts: list[bytes]) -> None:
        """Write the bytes into the worker's window buffer, sending each window once full."""
        for part in parts:
            view = memoryview(part)
            while view:
                if not self._open:
                    self._open_window(worker)
                    if self.done:
                        return
                piece = view[: self._window - self._held]
                worker.write(piece)
                self._held += len(piece)
                view = view[len(piece) :]
                if self._held == self._window:
                    self._send_window(worker)
                    if self.done:
                        return

    def _open_window(self, worker: YaraWorker) -> None:
        """A window in the worker's free buffer (after taking the older answer when both are in
        use), starting with the overlap kept from the last window."""
        try:
            while worker.outstanding >= SLOTS:
                self._take_answer(worker)
            if not self.done:
                worker.open_window(carry=self._held)
                self._open = True
        except YaraWorkerError as exc:
            self._error = exc

    def _send_window(self, worker: YaraWorker) -> None:
        try:
            worker.send_window(self._offset, self.file_type, self.size)
            self._open = False
            if self._held == self._window:  # else the body's last window: nothing follows it
                self._next_window()  # the worker carries the overlap into its next buffer
            while not self.done and worker.ready():  # answers already in: no waiting
                self._take_answer(worker)
        except YaraWorkerError as exc:
            self._error = exc

    def _scan_full_window(self) -> None:
        parts = self._parts
        self._parts = []
        kept = _tail(parts, self._overlap)
        self._scan(parts, self._offset)
        self._next_window()
        self._parts = [kept] if kept else []

    def _next_window(self) -> None:
        """A full window went to YARA: the next one starts one step further and begins with its
        last ``overlap`` bytes (kept by the caller)."""
        self._scanned_to = self._offset + self._window
        self._held = self._overlap
        self._offset += self._window - self._overlap

    def _scan(self, parts: list[bytes], offset: int) -> None:
        """One window in this process (no worker process): YARA holds the GIL meanwhile."""
        data = b"".join(parts)
        del parts[:]  # not held twice while YARA scans
        try:
            self._hit = self.ruleset.yara.scan_window(data, offset, self.file_type, self.size)
        except ScanTimeout as exc:  # (raised without the frames that hold this thread's scanner)
            self._timeout = exc

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
