"""glibc malloc settings for a process whose threads allocate large buffers.

glibc gives a thread that meets contention an arena of its own (up to eight per core), and a freed
buffer of many MiB stays resident in the arena that allocated it. dsxa_lite's streamed scans build
a 16 MiB YARA window in whichever worker thread runs them when no YARA worker process is there
(measured before the windows moved to one: two 2 GiB bodies at once peaked at 212 MB RSS with the
default arenas, 169 MB with one arena, for about the same CPU; docs/performance.md).
"""

from __future__ import annotations

import ctypes
import ctypes.util

M_ARENA_MAX = -8  # glibc's <malloc.h>


def limit_malloc_arenas(arenas: int = 1) -> bool:
    """Cap glibc's malloc arenas (as ``MALLOC_ARENA_MAX`` would); call before threads start.
    False where the C library has no ``mallopt`` (not glibc) or refuses."""
    name = ctypes.util.find_library("c")
    if name is None:
        return False
    try:
        mallopt = ctypes.CDLL(name).mallopt
    except (OSError, AttributeError):
        return False
    return bool(mallopt(M_ARENA_MAX, arenas))
