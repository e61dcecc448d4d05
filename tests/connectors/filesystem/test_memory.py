"""The connector's enumeration holds one page in memory, however many files the asset has."""

from __future__ import annotations

import os
import tracemalloc
from pathlib import Path

import pytest

from connectors.filesystem.connector import FilesystemConnector
from connectors.filesystem.settings import FilesystemSettings

pytestmark = pytest.mark.integration


def tree(root: Path, count: int) -> Path:
    """``count`` one-byte files, 100 per folder (the benchmark's layout)."""
    for n in range(count):
        folder = root / f"d{n // 100:04d}"
        if n % 100 == 0:
            folder.mkdir(parents=True)
        fd = os.open(folder / f"f{n:07d}.bin", os.O_WRONLY | os.O_CREAT, 0o644)
        os.write(fd, b"x")
        os.close(fd)
    return root


async def enumeration_peak(asset: Path) -> tuple[int, int]:
    """Items enumerated (the async path a full scan takes, a page at a time in a worker thread) and
    the peak of Python memory allocated while doing it."""
    connector = FilesystemConnector(FilesystemSettings(asset=str(asset)))  # type: ignore[call-arg]
    seen = 0
    tracemalloc.start()
    try:
        tracemalloc.reset_peak()
        base = tracemalloc.get_traced_memory()[0]
        async for _item in connector.scan_items():
            seen += 1
        return seen, tracemalloc.get_traced_memory()[1] - base
    finally:
        tracemalloc.stop()


@pytest.mark.anyio
async def test_enumeration_memory_does_not_grow_with_the_asset(tmp_path: Path) -> None:
    small = tree(tmp_path / "small", 3_000)
    large = tree(tmp_path / "large", 30_000)
    seen_small, peak_small = await enumeration_peak(small)
    seen_large, peak_large = await enumeration_peak(large)
    assert (seen_small, seen_large) == (3_000, 30_000)
    # ten times the files: the same page in memory (a list of every item would be ~10x, megabytes)
    assert peak_large < 1.5 * peak_small + 64 * 1024, (peak_small, peak_large)
    assert peak_large < 1 << 20
