"""A bounded verdict cache by SHA-256: what ``/scan/by_hash`` answers from."""

from __future__ import annotations

import threading
from typing import Generic, TypeVar

V = TypeVar("V")


class VerdictCache(Generic[V]):
    """Least-recently-stored entries go first past ``capacity`` (0: keeps nothing).

    Keyed by ``(identity, sha256)``, so a reload of the rules makes earlier verdicts unreachable
    (and :meth:`clear` drops them). Thread-safe: archive scans store from worker threads.
    """

    def __init__(self, capacity: int) -> None:
        self.capacity = capacity
        self._entries: dict[tuple[str, str], V] = {}  # insertion-ordered: the first is the oldest
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self._entries)

    def put(self, identity: str, sha256: str, value: V) -> None:
        """Remember ``value`` for ``sha256`` under ``identity``."""
        if self.capacity <= 0:
            return
        key = (identity, sha256)
        entries = self._entries
        # each dict operation is atomic under the GIL; only eviction, which iterates, takes the lock
        entries.pop(key, None)
        entries[key] = value
        if len(entries) > self.capacity:
            with self._lock:
                while len(entries) > self.capacity:
                    entries.pop(next(iter(entries)), None)

    def get(self, identity: str, sha256: str) -> V | None:
        """The value stored for ``sha256`` under ``identity``, or None."""
        return self._entries.get((identity, sha256))

    def clear(self) -> None:
        """Forget everything."""
        with self._lock:
            self._entries.clear()
