"""YARA rules through yara-x.

Options: the rules folder (every ``*.yar`` compiled once at start, each file in its own namespace
named after it), a timeout per scan call, and the window size and overlap for large files.

Rules may use three globals set for each scan:

- ``dsxa_file_type``: the type detected from the file's first bytes (``PE``, ``PDF``, ``OLE``, …),
  the same in every window, so a rule can ask "a document carrying a PE" anywhere in the file;
- ``dsxa_file_size``: the size of the whole file (``filesize`` is that of the window);
- ``dsxa_window_offset``: where the scanned window starts in the file (0 for small files).

Known limits: files larger than the window are scanned window by window, so offsets
(``at``, ``uint16(0)``, ``filesize``) are relative to the window and a match longer than the
overlap can be missed where it straddles two windows. The threat type is the rule's
``threat_type`` meta, which must be one of DSXA's (:mod:`dsxa_lite.threats`; checked by the
compiler, so a rule set with another value does not load), else null.

``yara_x.Scanner`` may only be used, and dropped, by the thread that created it (pyo3
``unsendable``: another thread panics, or leaks it with an "unsendable ... dropped on another
thread" error). So the engine keeps one scanner for its owner thread (the event loop's, which
scans small bodies inline: ~1 µs for 4 KiB; created there on first use, so rules may be compiled
in another thread), a scanner per :meth:`YaraEngine.session` for a thread that scans many files in
a row (an archive), and any other call builds a scanner on the shared compiled rules (~14 µs).
Call :meth:`YaraEngine.close` from the owner thread when the engine may be freed elsewhere.

The timeout bounds one scan call (one window). A :meth:`YaraEngine.session` (an archive walk) may
also have a total time limit (``session_time_limit_s``, the archive time limit): a file larger
than a window is checked against it between its windows, and past it the scan ends with
:class:`ScanTimeout` (Not Scanned), so a large member cannot keep a walk going window after window
long past the walk's limit (the walk itself checks it only between members and chunks).
"""

from __future__ import annotations

import hashlib
import io
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from importlib.metadata import version
from pathlib import Path
from typing import Any

import yara_x

from dsxa_lite.engines import Hit, ScanInput, ScanTimeout
from dsxa_lite.threats import THREAT_TYPE_REGEXP, ThreatType

YARA_X_VERSION = version("yara-x")


class RulesError(ValueError):
    """The rule folder cannot be compiled; the message names the file and the error."""


def _meta(rule: yara_x.Rule) -> dict[str, object]:
    return dict(rule.metadata)


class YaraEngine:
    """Scans with the compiled rules of one folder; see the module docstring for options."""

    name = "yara"

    def __init__(
        self,
        rules_dir: Path | yara_x.Rules,
        *,
        timeout_s: int = 30,
        window_bytes: int = 16 * 1024 * 1024,
        overlap_bytes: int = 64 * 1024,
        owner: threading.Thread | None = None,
        session_time_limit_s: float | None = None,
    ) -> None:
        """``rules_dir`` is compiled; rules compiled elsewhere (a YARA worker process,
        :mod:`dsxa_lite.yara_worker`, which only calls :meth:`scan_window`) are used as they are,
        with no digest and no file list. ``session_time_limit_s``: the total time limit of the
        scans of one :meth:`session` (None: none)."""
        self.timeout_s = timeout_s
        self.session_time_limit_s = session_time_limit_s
        self.window_bytes = window_bytes
        self.overlap_bytes = overlap_bytes
        self.files: list[str]
        if isinstance(rules_dir, yara_x.Rules):
            self.rules, self.digest, self.files = rules_dir, "", []
        else:
            self.rules, self.digest, self.files = self._compile(rules_dir)
        self._owner = owner or threading.current_thread()
        self._owner_scanner: yara_x.Scanner | None = None
        self._local = threading.local()

    @staticmethod
    def _compile(rules_dir: Path) -> tuple[yara_x.Rules, str, list[str]]:
        """Compile every ``*.yar`` of ``rules_dir``; :class:`RulesError` naming the file otherwise.

        The digest is that of the rules as compiled (yara-x's serialized form, the same in every
        process for the same rules): it covers files pulled in by ``include`` too, which a digest
        of the folder's sources would miss."""
        compiler = yara_x.Compiler()
        compiler.define_global("dsxa_file_type", "")
        compiler.define_global("dsxa_file_size", 0)
        compiler.define_global("dsxa_window_offset", 0)
        compiler.allowed_metadata(
            "threat_type",
            yara_x.MetaType.STRING,  # type: ignore[arg-type]
            required=False,
            error=True,
            regexp=THREAT_TYPE_REGEXP,
        )
        try:
            files = sorted(rules_dir.glob("*.yar"))
        except OSError as exc:
            raise RulesError(f"cannot list {rules_dir}: {exc}") from None
        if not files:
            raise RulesError(f"no *.yar files in {rules_dir}")
        error = None
        for path in files:
            try:
                source = path.read_text(encoding="utf-8")
                compiler.new_namespace(path.stem)
                compiler.add_source(source, origin=str(path))
            except (OSError, UnicodeDecodeError, yara_x.CompileError) as exc:
                error = f"{path}: {exc}"
                break
        if error is not None:
            # dropped here: the error's traceback keeps this frame, and pyo3 refuses to drop the
            # (unsendable) compiler on the thread that handles the error (a reload's, not this one)
            del compiler
            raise RulesError(error)
        rules = compiler.build()
        serialized = io.BytesIO()
        rules.serialize_into(serialized)
        return rules, hashlib.sha256(serialized.getvalue()).hexdigest(), [p.name for p in files]

    def _new_scanner(self) -> yara_x.Scanner:
        scanner = yara_x.Scanner(self.rules)
        scanner.set_timeout(self.timeout_s)
        return scanner

    def _scanner(self) -> yara_x.Scanner:
        if threading.current_thread() is self._owner:
            if self._owner_scanner is None:
                self._owner_scanner = self._new_scanner()
            return self._owner_scanner
        held: yara_x.Scanner | None = getattr(self._local, "scanner", None)
        return held if held is not None else self._new_scanner()

    @contextmanager
    def session(self) -> Iterator[None]:
        """Reuse one scanner for every scan of this thread inside the block (created and dropped
        here, on this thread): an archive's members cost a scan each, not a scanner each. The
        scans of the outermost block share its time limit (``session_time_limit_s``)."""
        outermost = self.session_time_limit_s is not None and getattr(self._local, "deadline", None) is None
        if outermost:
            assert self.session_time_limit_s is not None
            self._local.deadline = time.monotonic() + self.session_time_limit_s
        try:
            if threading.current_thread() is self._owner or getattr(self._local, "scanner", None) is not None:
                yield
                return
            self._local.scanner = self._new_scanner()
            try:
                yield
            finally:
                del self._local.scanner
        finally:
            if outermost:
                del self._local.deadline

    def close(self) -> None:
        """Drop the building thread's scanner (from that thread), so that the engine can be freed
        on any thread; later scans build a scanner each."""
        if threading.current_thread() is self._owner:
            self._owner_scanner = None

    def scan(self, item: ScanInput) -> Hit | None:
        """First matching rule over the whole file, window by window past ``window_bytes``."""
        return _frameless(self._scan_item, item)

    def _scan_item(self, item: ScanInput) -> Hit | None:
        scanner = self._scanner()
        scanner.set_global("dsxa_file_type", item.file_type)
        scanner.set_global("dsxa_file_size", item.size)
        if item.size <= self.window_bytes:
            data = item.data if item.data is not None else item.read_at(0, item.size)
            return self._scan_window(scanner, data, 0)
        step = self.window_bytes - self.overlap_bytes
        deadline: float | None = getattr(self._local, "deadline", None)
        offset = 0
        while offset < item.size:
            hit = self._scan_window(scanner, item.read_at(offset, self.window_bytes), offset)
            if hit is not None:
                return hit
            if offset + self.window_bytes >= item.size:
                break
            offset += step
            if deadline is not None and time.monotonic() > deadline:
                raise ScanTimeout(
                    f"Archive scan time limit of {self.session_time_limit_s:g} s reached "
                    f"(YARA had scanned {offset} of {item.size} bytes)"
                )
        return None

    def scan_window(self, data: bytes, offset: int, file_type: str, size: int) -> Hit | None:
        """One window of a file: ``offset`` where it starts, ``size`` the whole file's (the windows
        of a body scanned as it arrives, :mod:`dsxa_lite.streamed`)."""
        return _frameless(self._scan_one_window, data, offset, file_type, size)

    def _scan_one_window(self, data: bytes, offset: int, file_type: str, size: int) -> Hit | None:
        scanner = self._scanner()
        scanner.set_global("dsxa_file_type", file_type)
        scanner.set_global("dsxa_file_size", size)
        return self._scan_window(scanner, data, offset)

    def _scan_window(self, scanner: yara_x.Scanner, data: bytes, offset: int) -> Hit | None:
        scanner.set_global("dsxa_window_offset", offset)
        try:
            results = scanner.scan(data)
        except yara_x.TimeoutError:
            raise ScanTimeout(f"YARA scan timed out after {self.timeout_s}s") from None
        for rule in results.matching_rules:
            meta = _meta(rule)
            kind = meta.get("threat_type")
            return Hit(
                self.name,
                rule.identifier,
                ThreatType(kind) if isinstance(kind, str) else None,
                str(meta.get("description") or ""),
            )
        return None


def _frameless(call: Callable[..., Hit | None], *args: Any) -> Hit | None:
    """``call(*args)``; an error it raises (a timeout, a read that failed) is raised again without
    its traceback and chained errors: their frames hold this thread's ``yara_x.Scanner``, which
    pyo3 refuses to drop on another thread (the scanner leaks and an error is printed), and the
    error is handled on the event loop's thread."""
    try:
        return call(*args)
    except Exception as exc:
        error = exc
    error.__traceback__ = error.__context__ = error.__cause__ = None
    raise error
