"""The malloc arena cap takes effect on glibc (dsxa_lite calls it before its threads start)."""

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
