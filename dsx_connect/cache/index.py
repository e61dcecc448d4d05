"""The unchanged-object index: per connector, location -> what was scanned there last.

An entry holds the item's version as its connector answered it (``shared.item_version``), the
content's sha256, the scanner identity the verdict came from, the verdict and when. A listed item
is *unchanged* when its version and the current scanner identity both match its entry.

Two stores with one interface (:class:`IndexStore`): Redis (a hash per connector, bounded to
``max_entries`` fields by random eviction: ``dsx_connect.state.scan_cache``) and the SQL history's
``scan_cache`` table when the results store is durable (``dsx_connect.cache.sql``). Each answers a
whole batch in one round trip.
"""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from shared.models import DsxaVerdict, Verdict

#: only these are served from the index; anything else (Not Scanned, Unknown, …) is scanned again.
#: A cached Malicious verdict goes through the verdict action step like a fresh one.
CACHEABLE_VERDICTS = frozenset({Verdict.BENIGN.value, Verdict.MALICIOUS.value})

_COMPACT = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"))
_NOT_KEPT = ("cached", "engine_version", "X-Custom-Metadata", "x_custom_metadata")


@dataclass(frozen=True, slots=True)
class Entry:
    """What the index remembers of one location."""

    version: str
    sha256: str
    identity: str
    verdict: dict[str, Any]  # the scanner's answer, as DsxaVerdict dumps it (no per-request echo)
    at: float

    def dump(self) -> str:
        """The Redis form (the sha256 is the verdict's ``file_info.file_hash``, not repeated)."""
        return _COMPACT.encode({"v": self.version, "i": self.identity, "r": self.verdict, "t": self.at})

    @classmethod
    def load(cls, raw: str | bytes | None) -> Entry | None:
        if raw is None:
            return None
        try:
            data = json.loads(raw)
            verdict = dict(data["r"])
            sha256 = str(verdict.get("file_info", {}).get("file_hash", ""))
            return cls(str(data["v"]), sha256, str(data["i"]), verdict, float(data["t"]))
        except (ValueError, KeyError, TypeError, AttributeError):
            return None  # a damaged entry is a miss, never an error

    @classmethod
    def of(cls, version: str, identity: str, verdict: DsxaVerdict, at: float | None = None) -> Entry:
        # what a hit sets anew (the echo names another request) is not kept: ~0.5 KB per entry in Redis
        stored = verdict.model_dump(
            mode="json", exclude={"x_custom_metadata", "scan_duration_in_microseconds", "protected_entity"}
        )
        for field in _NOT_KEPT:
            stored.pop(field, None)
        return cls(version, verdict.file_info.file_hash, identity, stored, time.time() if at is None else at)


def fresh(entry: Entry | None, listed_version: str | None, identity: str | None) -> bool:
    """Whether ``entry`` still describes the listed item under the current scanner."""
    return (
        entry is not None
        and identity is not None
        and listed_version is not None
        and entry.version == listed_version
        and entry.identity == identity
        and entry.verdict.get("verdict") in CACHEABLE_VERDICTS
    )


def cached_verdict(entry: Entry, identity: str) -> DsxaVerdict:
    """The verdict a hit records: the stored answer, marked ``cached``, no scan time spent."""
    return DsxaVerdict.model_validate(
        {**entry.verdict, "scan_duration_in_microseconds": 0, "engine_version": identity, "cached": True}
    )


Key = tuple[str, str]  # (connector uuid, location)


class IndexStore(Protocol):
    def lookup(self, items: Sequence[Key], jobs: Sequence[str]) -> tuple[list[Entry | None], set[str]]:
        """Each item's entry (None: none, or its job ``jobs[i]`` was started with ``force``), and the
        jobs started with ``force``."""
        ...

    def record(self, entries: Sequence[tuple[Key, Entry]]) -> None:
        """Remember what was scanned (replacing older entries of the same locations)."""
        ...
