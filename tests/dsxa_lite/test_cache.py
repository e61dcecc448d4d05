"""Bounded stores: the verdict cache and the scans by path."""

from __future__ import annotations

import pytest

from dsxa_lite.by_path import PathScan, PathScans
from dsxa_lite.cache import VerdictCache

pytestmark = pytest.mark.unit


def test_verdict_cache_forgets_the_oldest_past_its_capacity() -> None:
    cache: VerdictCache[str] = VerdictCache(2)
    cache.put("id", "a", "A")
    cache.put("id", "b", "B")
    cache.put("id", "a", "A2")  # stored again: now the newest
    cache.put("id", "c", "C")
    assert (cache.get("id", "a"), cache.get("id", "b"), cache.get("id", "c")) == ("A2", None, "C")
    assert len(cache) == 2


def test_verdict_cache_is_keyed_by_identity_and_can_be_off() -> None:
    cache: VerdictCache[str] = VerdictCache(10)
    cache.put("rules-1", "a", "A")
    assert cache.get("rules-2", "a") is None
    off: VerdictCache[str] = VerdictCache(0)
    off.put("id", "a", "A")
    assert off.get("id", "a") is None


def test_path_scans_keep_the_newest() -> None:
    scans: PathScans[str] = PathScans(2)
    for guid in ("g1", "g2", "g3"):
        scans.add(guid, PathScan(1, None, 0.0))
    assert scans.get("g1") is None and scans.get("g3") is not None
