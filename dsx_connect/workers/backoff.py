"""The one retry backoff of the workers: capped exponential, with half of it jittered."""

from __future__ import annotations

import random


def full_jitter(attempt: int, base_s: float, cap_s: float) -> float:
    """The delay before retry number ``attempt`` (1-based): between half and all of
    ``min(cap_s, base_s * 2 ** (attempt - 1))``, so retries of many items spread out but never
    come back sooner than half the nominal delay."""
    ceiling = min(cap_s, base_s * (2 ** max(attempt - 1, 0)))
    return ceiling / 2 + random.uniform(0, ceiling / 2)
