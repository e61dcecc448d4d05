"""Scanning a file the scanner can read itself (DSXA's ``GET /scan/by_path``).

Only files under the configured roots (``DSXA_LITE_SCAN_ROOTS``) are read: the path must be
absolute, without ``..``, without a symbolic link in any component (its real path must be the
path as given) and name a regular file, opened with ``O_NOFOLLOW``. Scans run in the background;
their results wait, by ``scan_guid``, in a bounded store for ``POST /result/by_path``.
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
    """An open read-only descriptor of the file at ``raw`` and its path, or PathRefused/PathMissing."""
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
        fd = os.open(normal, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
    except FileNotFoundError:
        raise PathMissing(f"no file at {normal}") from None
    except OSError as exc:  # ELOOP: a link swapped in since the check; EACCES: not readable
        raise PathRefused(f"cannot open {normal}: {exc.strerror}") from None
    if not stat.S_ISREG(os.fstat(fd).st_mode):
        os.close(fd)
        raise PathRefused("Stream-Path is not a regular file")
    return fd, normal


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
