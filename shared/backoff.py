"""The project's one retry backoff: capped exponential, jittered.

The core's re-published tasks and the SIEM forwarder use :func:`equal_jitter` (a retry never comes
back sooner than half its nominal delay); the connectors' retries of calls to the core and to
Microsoft Graph use :func:`full_jitter`. Retries are countdowns and small loops, not decorated
calls, so these functions are all a retry library would bring.
"""

from __future__ import annotations

import random


def nominal_delay(retry: int, base_s: float, cap_s: float) -> float:
    """``min(cap_s, base_s * 2 ** (retry - 1))`` for retry number ``retry`` (1-based)."""
    return min(cap_s, base_s * (2 ** min(max(retry - 1, 0), 30)))


def full_jitter(retry: int, base_s: float, cap_s: float) -> float:
    """Between nothing and all of the nominal delay."""
    return random.uniform(0, nominal_delay(retry, base_s, cap_s))


def equal_jitter(retry: int, base_s: float, cap_s: float) -> float:
    """Between half and all of the nominal delay, so retries of many items spread out but never
    come back sooner than half of it."""
    ceiling = nominal_delay(retry, base_s, cap_s)
    return ceiling / 2 + random.uniform(0, ceiling / 2)
