"""A connector over a dict, to test the framework without any storage."""

from __future__ import annotations

import hashlib
from collections.abc import AsyncGenerator, AsyncIterator

import anyio

from shared.connector import Connector, ConnectorSettings, Item, ItemContent, check_version, relative_location
from shared.errors import NotFoundError
from shared.models import ItemActionType, RequestedAction, StatusResponse


class MemorySettings(ConnectorSettings):
    name: str = "memory-connector"
    port: int = 8699
    asset: str = "memory"


class MemoryConnector(Connector[ConnectorSettings]):
    """Items live in ``self.items``; ``push`` feeds the watcher; ``chunked`` serves items as streams."""

    version = "9.9.9"

    def __init__(
        self, settings: ConnectorSettings | None = None, items: dict[str, bytes] | None = None
    ) -> None:
        self.items: dict[str, bytes] = dict(items or {})
        self.chunked: set[str] = set()
        self._changes: list[list[Item]] = []
        #: batches the watcher was resumed after (a storage with a cursor would mark them seen)
        self.seen: list[list[Item]] = []
        self._changed = anyio.Event()
        super().__init__(settings or MemorySettings())

    def resolve(self, location: str) -> str:
        return str(relative_location(location))

    async def enumerate(self) -> AsyncIterator[Item]:
        for location in sorted(self.items):
            if self.filter.matches(location):
                yield Item(location, location, len(self.items[location]))

    async def read(self, location: str) -> ItemContent:
        key = self.resolve(location)
        if key not in self.items:
            raise NotFoundError(f"no item {key!r}")
        data = self.items[key]
        if key in self.chunked:
            return ItemContent(size=len(data), chunks=_chunks(data), version=_version(data))
        return ItemContent(size=len(data), data=data, version=_version(data))

    async def act(self, location: str, action: RequestedAction, version: str | None = None) -> StatusResponse:
        key = self.resolve(location)
        if key not in self.items:
            raise NotFoundError(f"no item {key!r}")
        check_version(key, version, _version(self.items[key]))
        data = self.items.pop(key)
        if action.type == ItemActionType.MOVE:
            self.items[f"{self.settings.item_action_move_metainfo}/{key}"] = data
        return StatusResponse(status="success", message=f"{action.type.value} done")

    def push(self, *locations: str) -> None:
        """Simulate a storage change notification."""
        self._changes.append([Item(loc, loc, len(self.items.get(loc, b""))) for loc in locations])
        self._changed.set()

    async def watch(self, stop: anyio.Event) -> AsyncGenerator[list[Item]]:
        while not stop.is_set():
            with anyio.move_on_after(0.05):
                await self._changed.wait()
            self._changed = anyio.Event()
            while self._changes:
                batch = self._changes.pop(0)
                yield batch
                self.seen.append(batch)


async def _chunks(data: bytes, size: int = 1000) -> AsyncIterator[bytes]:
    for start in range(0, len(data), size):
        yield data[start : start + size]


def _version(data: bytes) -> str:
    """An item's version: a digest of its bytes."""
    return hashlib.sha256(data).hexdigest()[:16]
