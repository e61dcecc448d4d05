"""Run blocking iteration (``os.scandir``, a storage SDK's pager) off the event loop."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterable, Iterator
from itertools import islice
from typing import TypeVar

import anyio.to_thread

T = TypeVar("T")


def _take(iterator: Iterator[T], count: int) -> list[T]:
    return list(islice(iterator, count))


async def iterate_in_thread(source: Iterable[T], chunk_size: int = 256) -> AsyncIterator[T]:
    """Yield the items of a blocking iterable, pulling ``chunk_size`` at a time in a worker thread.

    Memory stays bounded by one chunk and the event loop keeps serving requests while the
    iterable blocks. When the consumer stops early, a generator source is closed (so it can
    release directory handles or connections).
    """
    iterator = iter(source)
    try:
        while True:
            chunk = await anyio.to_thread.run_sync(_take, iterator, chunk_size)
            if not chunk:
                return
            for item in chunk:
                yield item
    finally:
        close = getattr(iterator, "close", None)
        if close is not None:
            close()
