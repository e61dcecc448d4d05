"""Garbage-collector settings for the long-running services and workers: fewer, cheaper collections.

Each request and each batch allocates many short-lived containers (pydantic models, dicts, JSON).
At the default first threshold (700 allocations) the cyclic collector runs thousands of times a
second under load, and its fuller passes walk every object created at import. Freezing what start-up
created and raising the first threshold takes the collector off the profile (docs/performance.md);
reference counting still frees almost everything at once, so memory stays flat.
"""

from __future__ import annotations

import gc

FIRST_THRESHOLD = 50_000


def tune_gc(first_threshold: int = FIRST_THRESHOLD) -> None:
    """Call once start-up is done (after imports and app creation), in each process."""
    gc.freeze()
    _, second, third = gc.get_threshold()
    gc.set_threshold(first_threshold, second, third)
