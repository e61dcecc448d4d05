"""glibc malloc settings take effect (dsxa_lite sets them before its threads start)."""

from __future__ import annotations

import subprocess
import sys

import pytest

pytestmark = pytest.mark.unit


def test_the_arena_cap_is_accepted_by_glibc() -> None:
    # in a fresh interpreter: the cap only applies before threads have made their own arenas
    code = "from shared.malloc_tuning import limit_malloc_arenas; print(limit_malloc_arenas())"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60)
    assert out.stdout.strip() == "True"


def test_freed_heap_is_kept_for_a_stream_of_short_lived_buffers() -> None:
    """What a streamed body does to dsxa_lite: buffers of a few hundred KiB made and freed in turn.
    With glibc's sliding thresholds each comes back from the kernel (page faults); kept, they do not."""
    code = (
        "import resource, sys\n"
        "from shared.malloc_tuning import keep_freed_heap\n"
        "if sys.argv[1] == 'kept': assert keep_freed_heap()\n"
        "keep = [bytes(64 << 10) for _ in range(8)]\n"
        "before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt\n"
        "for n in range(2000):\n"
        "    piece = bytes(200 << 10) + bytes(n % 7)\n"
        "    keep[n % 8] = piece[: 64 << 10]\n"
        "    del piece\n"
        "print(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)\n"
    )

    def faults(mode: str) -> int:
        run = subprocess.run(
            [sys.executable, "-c", code, mode], capture_output=True, text=True, check=True, timeout=60
        )
        return int(run.stdout)

    default, kept = faults("default"), faults("kept")
    assert kept * 5 < default, (kept, default)
