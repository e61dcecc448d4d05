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
from typing import Any, Protocol

from shared.models import DsxaVerdict, Verdict

#: only these are served from the index; anything else (Not Scanned, Unknown, …) is scanned again.
#: A cached Malicious verdict goes through the verdict action step like a fresh one.
CACHEABLE_VERDICTS = frozenset({Verdict.BENIGN.value, Verdict.MALICIOUS.value})

_COMPACT = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"))
#: what a hit sets anew (the echo names another request) is not kept: ~0.5 KB per entry in Redis
_NOT_KEPT = {
    "x_custom_metadata",
    "scan_duration_in_microseconds",
    "protected_entity",
    "cached",
    "engine_version",
}


class Entry:
    """What the index remembers of one location.

    The verdict is the scanner's answer as ``DsxaVerdict`` dumps it, less what a hit sets anew. An
    entry made from an answer (:meth:`of`, every scanned file) holds it as compact JSON, which is
    what both stores write; one read back from a store holds it as a dict. Each form is made from
    the other only when asked for (pydantic's JSON of the answer costs a third of a dict and its
    encoding).
    """

    __slots__ = ("_text", "_verdict", "at", "identity", "sha256", "version")

    def __init__(
        self,
        version: str,
        sha256: str,
        identity: str,
        verdict: dict[str, Any] | None,
        at: float,
        text: str | None = None,
    ) -> None:
        if verdict is None and text is None:
            raise ValueError("an entry needs its verdict, as a dict or as JSON text")
        self.version, self.sha256, self.identity, self.at = version, sha256, identity, at
        self._verdict, self._text = verdict, text

    @property
    def verdict(self) -> dict[str, Any]:
        """The verdict as a dict; ``{}`` for text that is not a JSON object (a damaged row is a miss,
        never an error: :func:`fresh` finds no verdict in it)."""
        if self._verdict is None:
            try:
                read = json.loads(self._text or "{}")
            except ValueError:
                read = {}
            self._verdict = read if isinstance(read, dict) else {}
        return self._verdict

    @property
    def verdict_json(self) -> str:
        """The verdict's compact JSON (the SQL store's column, the Redis entry's ``r``)."""
        if self._text is None:
            self._text = _COMPACT.encode(self._verdict)
        return self._text

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Entry):
            return NotImplemented
        mine = (self.version, self.sha256, self.identity, self.verdict, self.at)
        return mine == (other.version, other.sha256, other.identity, other.verdict, other.at)

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        return f"Entry({self.version!r}, {self.sha256!r}, {self.identity!r}, {self.verdict!r}, {self.at!r})"

    def dump(self) -> str:
        """The Redis form (the sha256 is the verdict's ``file_info.file_hash``, not repeated)."""
        head = _COMPACT.encode({"v": self.version, "i": self.identity, "t": self.at})
        return f'{head[:-1]},"r":{self.verdict_json}}}'

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
        text = verdict.model_dump_json(exclude=_NOT_KEPT)  # by field name: the echo's alias too
        return cls(
            version, verdict.file_info.file_hash, identity, None, time.time() if at is None else at, text=text
        )


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
