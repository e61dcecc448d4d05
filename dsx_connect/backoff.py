"""The one retry backoff of the core (workers' item and task retries, the SIEM forwarder): capped
exponential, half of it jittered. Retries here are countdowns of re-published tasks and a forwarder
loop, not decorated calls, so this one function is all a retry library would bring."""

from __future__ import annotations

import random


def full_jitter(attempt: int, base_s: float, cap_s: float) -> float:
    """The delay before retry number ``attempt`` (1-based): between half and all of
    ``min(cap_s, base_s * 2 ** (attempt - 1))``, so retries of many items spread out but never
    come back sooner than half the nominal delay."""
    ceiling = min(cap_s, base_s * (2 ** min(max(attempt - 1, 0), 30)))
    return ceiling / 2 + random.uniform(0, ceiling / 2)
