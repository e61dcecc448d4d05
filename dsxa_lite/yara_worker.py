"""YARA windows scanned in a child process, out of the service's GIL.

yara-x's Python binding holds the GIL while it scans (yara-x issue #511): a 16 MiB window takes
~20 ms, during which the event loop that receives the body cannot run. A streamed body
(:mod:`dsxa_lite.streamed`) therefore hands its windows to a :class:`YaraWorker`: a child process
with the same compiled rules (serialized: no recompile, no drift from the parent's). Windows go
through two buffers of a ``memfd`` both processes map (a pipe moved only ~650 MB/s here, and a
memfd is not bounded by a container's small ``/dev/shm``); requests and answers, in window order,
go through a pipe. The parent writes the body's bytes into one buffer as they arrive while the
child scans the other, so a window is never also held in the parent's own memory.
Measured: docs/performance.md.

A worker serves one body at a time; :class:`YaraWorkers` keeps up to ``LARGE_SCAN_CONCURRENCY``
idle ones for the current rule set and closes those of a replaced one (or a broken one) in a
background thread: stopping a child waits for it, and the caller is the event loop.
"""

from __future__ import annotations

import io
import logging
import mmap
import multiprocessing
import os
import threading
from multiprocessing import reduction
from multiprocessing.connection import Connection
from typing import Any

import yara_x

from dsxa_lite.engines import Hit, ScanTimeout
from dsxa_lite.engines.yara import YaraEngine

log = logging.getLogger("dsxa_lite.scan")

SLOTS = 2  # window buffers per worker: the parent fills one while the child scans the other
START_TIMEOUT_S = 60.0  # a child not serving by then is given up (the rules deserialize in ms)


class YaraWorkerError(RuntimeError):
    """The child process died, did not start, or failed: the scan fails (retryable), the worker
    is dropped."""


def _serve(conn: Connection, rules_bytes: bytes, timeout_s: int, window_bytes: int) -> None:
    """The child: scan each window named, answer with its hit (or None)."""
    engine = YaraEngine(yara_x.Rules.deserialize_from(io.BytesIO(rules_bytes)), timeout_s=timeout_s)
    fd = reduction.recv_handle(conn)
    buffers = mmap.mmap(fd, SLOTS * window_bytes)
    os.close(fd)
    conn.send(("ready", None))
    while True:
        try:
            slot, length, offset, file_type, size = conn.recv()
        except (EOFError, OSError):
            return
        start = slot * window_bytes
        data = buffers[start : start + length]  # yara-x scans bytes: one copy out of the buffer
        try:
            answer: tuple[str, Any] = ("done", engine.scan_window(data, offset, file_type, size))
        except ScanTimeout as exc:
            answer = ("timeout", str(exc))
        except Exception as exc:  # a bug, not the file's fault: the parent fails the scan
            answer = ("error", f"{type(exc).__name__}: {exc}")
        del data
        conn.send(answer)


class YaraWorker:
    """One child process scanning the windows of one body at a time (see the module docstring)."""

    def __init__(self, yara: YaraEngine) -> None:
        self.rules = yara.rules  # the rule set it scans with
        self.window_bytes = yara.window_bytes
        serialized = io.BytesIO()
        yara.rules.serialize_into(serialized)
        fd = os.memfd_create("dsxa-lite-yara-windows")
        try:
            os.ftruncate(fd, SLOTS * self.window_bytes)
            self._buffers = mmap.mmap(fd, SLOTS * self.window_bytes)
            context = multiprocessing.get_context("spawn")  # the parent has threads: never fork it
            self._conn, child = context.Pipe()
            self.process = context.Process(
                target=_serve,
                args=(child, serialized.getvalue(), yara.timeout_s, self.window_bytes),
                name="dsxa-lite-yara",
                daemon=True,
            )
            self.process.start()
            child.close()
            reduction.send_handle(self._conn, fd, self.process.pid)
        finally:
            os.close(fd)
        self._started = False
        self.broken = False
        self.outstanding = 0  # windows sent, not answered yet (at most 2: one per buffer)
        self._next_slot = 0
        self._filling: int | None = None  # the buffer a window is being written into
        self._position = 0  # where its next byte goes (an offset into both buffers' map)
        self._last_end = 0  # where the window sent last ends in the map

    def open_window(self, carry: int = 0) -> None:
        """Start a window in the free buffer, beginning with the last ``carry`` bytes of the window
        sent last (the overlap); :meth:`write` adds to it, :meth:`send_window` asks for its scan.
        The caller takes an answer first when both buffers are in use."""
        if self.outstanding >= SLOTS:
            raise RuntimeError("every window buffer is in use: take an answer first")
        if not self._started:
            self._wait_started()
        slot = self._filling = self._next_slot
        start = slot * self.window_bytes
        if carry:
            end = self._last_end
            self._buffers[start : start + carry] = self._buffers[end - carry : end]
        self._position = start + carry

    def write(self, data: bytes | memoryview) -> None:
        """Bytes of the open window, straight into the shared buffer (nothing else holds them)."""
        if self._filling is None:
            raise RuntimeError("no window is open")
        end = self._position + len(data)
        if end > (self._filling + 1) * self.window_bytes:
            raise ValueError("more bytes than a window holds")
        self._buffers[self._position : end] = data
        self._position = end

    def send_window(self, offset: int, file_type: str, size: int) -> None:
        """Ask for the scan of the open window (at file offset ``offset``; ``size`` the file's)."""
        slot = self._filling
        if slot is None:
            raise RuntimeError("no window is open")
        self._filling, self._next_slot, self._last_end = None, (slot + 1) % SLOTS, self._position
        try:
            self._conn.send((slot, self._position - slot * self.window_bytes, offset, file_type, size))
        except OSError as exc:
            raise self._died(exc) from None
        self.outstanding += 1

    def ready(self) -> bool:
        """Whether an answer is waiting."""
        return self.outstanding > 0 and self._conn.poll(0)

    def receive(self) -> Hit | None:
        """The next answer, in window order (blocking); raises the window's ScanTimeout."""
        try:
            kind, value = self._conn.recv()
        except (EOFError, OSError) as exc:
            raise self._died(exc) from None
        self.outstanding -= 1
        if kind == "timeout":
            raise ScanTimeout(value)
        if kind == "error":
            self.broken = True
            raise YaraWorkerError(f"YARA worker failed: {value}")
        return value

    def _wait_started(self) -> None:
        try:
            if not self._conn.poll(START_TIMEOUT_S):
                raise TimeoutError(f"not ready after {START_TIMEOUT_S:.0f} s")
            self._conn.recv()
        except (EOFError, OSError, TimeoutError) as exc:
            raise self._died(exc) from None
        self._started = True

    def _died(self, exc: BaseException) -> YaraWorkerError:
        self.broken = True
        return YaraWorkerError(f"YARA worker process gone (exit code {self.process.exitcode}): {exc!r}")

    def close(self) -> None:
        """Stop the child and unmap the buffers."""
        self._conn.close()
        self.process.terminate()
        self.process.join(timeout=5)
        self._buffers.close()


class YaraWorkers:
    """Idle workers for the current rule set, each handed to one streamed body at a time."""

    def __init__(self) -> None:
        self._idle: list[YaraWorker] = []
        self._lock = threading.Lock()  # taken on the event loop and, at the end, in close()
        self._unavailable = False

    def take(self, yara: YaraEngine) -> YaraWorker | None:
        """An idle worker with ``yara``'s rules, or a new one (it starts while the body arrives);
        None where child processes cannot start (YARA then scans in this process)."""
        with self._lock:
            stale = [w for w in self._idle if w.rules is not yara.rules]
            self._idle = [w for w in self._idle if w.rules is yara.rules]
            worker = self._idle.pop() if self._idle else None
        for old in stale:  # a reload replaced their rules
            _close_in_background(old)
        if worker is not None or self._unavailable:
            return worker
        try:
            return YaraWorker(yara)
        except OSError as exc:
            self._unavailable = True
            log.warning("no YARA worker process (YARA scans large bodies in this process): %s", exc)
            return None

    def give_back(self, worker: YaraWorker) -> None:
        """Keep ``worker`` for the next body, unless it broke or has answers still owed."""
        if worker.broken or worker.outstanding:
            _close_in_background(worker)
            return
        with self._lock:
            self._idle.append(worker)

    def close(self) -> None:
        with self._lock:
            idle, self._idle = self._idle, []
        for worker in idle:
            worker.close()


def _close_in_background(worker: YaraWorker) -> None:
    """:meth:`YaraWorker.close` in a thread of its own (it waits up to 5 s for the child)."""
    threading.Thread(target=worker.close, name="dsxa-lite-yara-close", daemon=True).start()
