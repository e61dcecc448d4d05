"""glibc malloc settings for a process whose threads allocate large buffers.

glibc gives a thread that meets contention an arena of its own (up to eight per core), and a freed
buffer of many MiB stays resident in the arena that allocated it. dsxa_lite's streamed scans build
a 16 MiB YARA window in whichever worker thread runs them when no YARA worker process is there
(measured before the windows moved to one: two 2 GiB bodies at once peaked at 212 MB RSS with the
default arenas, 169 MB with one arena, for about the same CPU; docs/performance.md).

A body streamed through dsxa_lite is also a stream of short-lived buffers of a few hundred KiB
(uvicorn's received pieces). With glibc's sliding thresholds the heap's freed top is given back to
the kernel almost at once and faulted in again for the next piece: 118,000-132,000 page faults per
GiB received instead of ~50,000 with the thresholds fixed, about 0.25 CPU s per GiB
(docs/performance.md).
:func:`keep_freed_heap` fixes both thresholds.
"""

from __future__ import annotations

import ctypes
import ctypes.util
from collections.abc import Callable

# glibc's <malloc.h>
M_TRIM_THRESHOLD = -1
M_MMAP_THRESHOLD = -3
M_ARENA_MAX = -8


def _mallopt() -> Callable[[int, int], int] | None:
    name = ctypes.util.find_library("c")
    if name is None:
        return None
    try:
        return ctypes.CDLL(name).mallopt
    except (OSError, AttributeError):
        return None


def limit_malloc_arenas(arenas: int = 1) -> bool:
    """Cap glibc's malloc arenas (as ``MALLOC_ARENA_MAX`` would); call before threads start.
    False where the C library has no ``mallopt`` (not glibc) or refuses."""
    mallopt = _mallopt()
    return mallopt is not None and bool(mallopt(M_ARENA_MAX, arenas))


def keep_freed_heap(trim_bytes: int = 8 << 20, mmap_threshold_bytes: int = 4 << 20) -> bool:
    """Keep up to ``trim_bytes`` of freed heap instead of giving it back to the kernel at once, and
    take allocations up to ``mmap_threshold_bytes`` from the heap (as ``MALLOC_TRIM_THRESHOLD_`` and
    ``MALLOC_MMAP_THRESHOLD_`` would, for this process only: not for the children it starts).
    False where the C library has no ``mallopt`` (not glibc) or refuses."""
    mallopt = _mallopt()
    if mallopt is None:
        return False
    return bool(mallopt(M_TRIM_THRESHOLD, trim_bytes)) and bool(
        mallopt(M_MMAP_THRESHOLD, mmap_threshold_bytes)
    )
