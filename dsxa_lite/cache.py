"""A bounded verdict cache by SHA-256: what ``/scan/by_hash`` answers from."""

from __future__ import annotations

import threading
from collections import OrderedDict
from typing import Generic, TypeVar

V = TypeVar("V")


class VerdictCache(Generic[V]):
    """Least-recently-stored entries go first past ``capacity`` (0: keeps nothing).

    Keyed by ``(identity, sha256)``, so a reload of the rules makes earlier verdicts unreachable
    (and :meth:`clear` drops them). Thread-safe: archive scans store from worker threads.
    """

    def __init__(self, capacity: int) -> None:
        self.capacity = capacity
        self._entries: OrderedDict[tuple[str, str], V] = OrderedDict()
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self._entries)

    def put(self, identity: str, sha256: str, value: V) -> None:
        """Remember ``value`` for ``sha256`` under ``identity``."""
        if self.capacity <= 0:
            return
        key = (identity, sha256)
        with self._lock:
            self._entries[key] = value
            self._entries.move_to_end(key)
            while len(self._entries) > self.capacity:
                self._entries.popitem(last=False)

    def get(self, identity: str, sha256: str) -> V | None:
        """The value stored for ``sha256`` under ``identity``, or None."""
        return self._entries.get((identity, sha256))

    def clear(self) -> None:
        """Forget everything."""
        with self._lock:
            self._entries.clear()
