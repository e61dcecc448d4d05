"""Wall-clock windows in tests: keep a counted sequence inside one fixed window."""

from __future__ import annotations

import time


def wait_to_clear_window_end(margin_s: float = 10.0, window_s: int = 60) -> float:
    """Seconds to wait so that at least ``margin_s`` of the current fixed window (``now // window_s``,
    as the per-minute failure counters key it) is left; 0 when enough is left already.

    A test that counts failures in a window fails if its sequence straddles the window's end, when
    the count restarts; it sleeps this long first (a wait on the clock, which is the condition)."""
    left = window_s - time.time() % window_s
    return 0.0 if left >= margin_s else left + 0.05
