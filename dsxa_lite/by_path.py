"""Scanning a file the scanner can read itself (DSXA's ``GET /scan/by_path``).

Only files under the configured roots (``DSXA_LITE_SCAN_ROOTS``) are read: the path must be
absolute, without ``..``, without a symbolic link in any component (its real path must be the
path as given) and name a regular file. The file is then opened one component at a time, each
relative to the folder opened before it and with ``O_NOFOLLOW``, so a folder swapped for a link
after the check is refused, not followed out of the roots; the file itself is opened with
``O_NONBLOCK`` and must be regular (a FIFO would block ``open()`` until a writer comes). Scans
run in the background; their results wait, by ``scan_guid``, in a bounded store for
``POST /result/by_path``.
"""

from __future__ import annotations

import os
import stat
from collections import OrderedDict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Generic, TypeVar

T = TypeVar("T")


class PathRefused(ValueError):
    """The path may not be scanned (outside the roots, a link, traversal…): a 403."""


class PathMissing(ValueError):
    """No regular file at the path: a 404."""


def open_under_roots(raw: str, roots: list[Path]) -> tuple[int, Path]:
    """An open read-only descriptor of the file at ``raw`` and its path, or PathRefused/PathMissing.

    Blocking (file system calls): call it in a worker thread."""
    if not roots:
        raise PathRefused("scan by path is off (no DSXA_LITE_SCAN_ROOTS configured)")
    if not raw or "\0" in raw:
        raise PathRefused("Stream-Path header missing or empty")
    path = Path(raw)
    if not path.is_absolute():
        raise PathRefused("Stream-Path must be an absolute path")
    if ".." in path.parts:
        raise PathRefused("Stream-Path may not contain '..'")
    normal = Path(os.path.normpath(path))
    if not any(normal == root or root in normal.parents for root in roots):
        raise PathRefused("Stream-Path is outside the scan roots")
    if not os.path.lexists(normal):
        raise PathMissing(f"no file at {normal}")
    if Path(os.path.realpath(normal)) != normal:
        raise PathRefused("Stream-Path goes through a symbolic link")
    try:
        fd = _open_no_links(normal)
    except FileNotFoundError:
        raise PathMissing(f"no file at {normal}") from None
    except OSError as exc:  # ELOOP/ENOTDIR: a link swapped in since the check; EACCES: not readable
        raise PathRefused(f"cannot open {normal}: {exc.strerror}") from None
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise PathRefused("Stream-Path is not a regular file")
        os.set_blocking(fd, True)
    except BaseException:
        os.close(fd)
        raise
    return fd, normal


_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
# O_NONBLOCK: open() of a FIFO (or some devices) returns at once instead of waiting for a writer
_FILE_FLAGS = os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC | os.O_NONBLOCK


def _open_no_links(path: Path) -> int:
    """``path`` opened from ``/`` one component at a time, none followed if it is a link (ELOOP
    or ENOTDIR then): what is opened is the file at ``path``, whatever is renamed meanwhile."""
    if len(path.parts) < 2:
        raise PathRefused("Stream-Path is not a regular file")  # "/" itself
    *folders, name = path.parts[1:]
    folder = os.open("/", _DIR_FLAGS)
    try:
        for part in folders:
            inner = os.open(part, _DIR_FLAGS, dir_fd=folder)
            os.close(folder)
            folder = inner
        if not stat.S_ISREG(os.stat(name, dir_fd=folder, follow_symlinks=False).st_mode):
            raise PathRefused("Stream-Path is not a regular file")  # not opened at all
        return os.open(name, _FILE_FLAGS, dir_fd=folder)
    finally:
        os.close(folder)


@dataclass
class PathScan(Generic[T]):
    """One scan by path: its result once done (``None`` while scanning)."""

    protected_entity: int
    metadata: str | None
    started: float
    result: T | None = None
    duration_us: int = 0
    error: str | None = None
    done: bool = field(default=False)


class PathScans(Generic[T]):
    """Scans by path by ``scan_guid``, the oldest forgotten past ``capacity``."""

    def __init__(self, capacity: int) -> None:
        self.capacity = capacity
        self._scans: OrderedDict[str, PathScan[T]] = OrderedDict()

    def add(self, guid: str, scan: PathScan[T]) -> None:
        """Track ``scan`` under ``guid``."""
        self._scans[guid] = scan
        while len(self._scans) > self.capacity:
            self._scans.popitem(last=False)

    def get(self, guid: str) -> PathScan[T] | None:
        """The scan of ``guid``, if still known."""
        return self._scans.get(guid)
