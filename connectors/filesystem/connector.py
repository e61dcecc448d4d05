"""The filesystem connector: one ``Connector`` subclass over a directory tree."""

from __future__ import annotations

import logging
import os
import stat
from collections.abc import AsyncGenerator, AsyncIterator, Iterator
from pathlib import Path

import anyio
import anyio.to_thread
from watchfiles import Change, awatch

from connectors.filesystem.manifest import MANIFEST
from connectors.filesystem.moving import (
    MOVING_PREFIX,
    file_version,
    move_file,
    open_folder,
    put_back,
    take_aside,
)
from connectors.filesystem.settings import FilesystemSettings
from connectors.filesystem.version import __version__
from shared.connector import (
    SMALL_ITEM_BYTES,
    STREAM_CHUNK_BYTES,
    Connector,
    Item,
    ItemContent,
    is_within,
    iterate_in_thread,
    open_inside,
    relative_location,
    resolve_inside,
)
from shared.errors import NotFoundError, OutsideAssetError, PermanentError, RetryableError
from shared.models import ItemActionType, RequestedAction, StatusResponse

log = logging.getLogger(__name__)


class FilesystemConnector(Connector[FilesystemSettings]):
    """Scans the directory ``DSXCONNECTOR_ASSET`` (a local disk or a mounted NFS/SMB share).

    Locations are paths relative to the asset, ``/``-separated; the display name is the same.

    Options: ``FILTER`` (see ``shared.connector.filters``), ``ITEM_ACTION`` = ``nothing``,
    ``delete``, ``move`` (to ``ITEM_ACTION_MOVE_METAINFO`` or the request's
    ``destination.path``, keeping the item's relative path) or ``movetag`` (a move: a
    filesystem has no tags); ``MONITOR`` watches for added or modified files
    (``MONITOR_FORCE_POLLING`` for mounts without inotify).

    Limits: ``tag`` is not supported. Symlinked folders are not followed (their targets inside
    the asset are walked anyway); symlinked files are scanned when they point inside the asset,
    skipped otherwise. The quarantine folder is skipped when it lies inside the asset, and its
    items are neither read nor acted on. A move destination from a request must lie inside the
    asset or the quarantine folder; no symlink is followed on the way to it (``moving``). Files
    are read through their real path, so a symlink swapped between the check and the read is the
    remaining race there.
    """

    version = __version__
    manifest = MANIFEST

    def configure(self, settings: FilesystemSettings) -> None:
        root = Path(os.path.realpath(settings.asset))
        if not root.is_dir():
            raise ValueError(f"asset {settings.asset!r} is not an existing directory")
        quarantine = _folder(root, settings.item_action_move_metainfo)
        if quarantine is not None and is_within(root, quarantine):
            raise ValueError("the quarantine folder cannot be the asset or contain it")
        super().configure(settings)
        self.root, self.quarantine = root, quarantine

    def resolve(self, location: str) -> Path:
        """The real path of ``location``; refuses ``..``, absolute paths and symlinks leading out."""
        return resolve_inside(self.root, location)

    # ---- enumeration -----------------------------------------------------------------------

    def enumerate(self) -> AsyncIterator[Item]:
        """Walk the asset in a worker thread, a chunk of items at a time."""
        return iterate_in_thread(self.walk())

    def walk(self) -> Iterator[Item]:
        """Depth-first ``os.scandir`` walk as a generator. One folder is open at a time (its
        subfolders wait as paths): a tree deeper than the process's file-descriptor limit is listed
        whole (each level kept its folder open, and past the limit whole subtrees were dropped with
        a warning while the scan completed). A subfolder this process may not list is skipped with a
        warning; any other error listing a folder (a stale NFS handle, EIO) stops the scan naming it,
        so its job fails instead of completing without that folder's files."""
        root, selected = str(self.root), self.filter
        skip = str(self.quarantine) if self.quarantine else None
        pending = [(root, "")]
        while pending:
            path, prefix = pending.pop()
            try:
                entries = os.scandir(path)
            except PermissionError as exc:
                if not prefix:
                    raise
                log.warning("folder not listed", extra={"location": ascii(prefix), "error": str(exc)})
                continue
            subfolders: list[tuple[str, str]] = []
            with entries:
                for entry in entries:
                    location = prefix + entry.name
                    try:
                        location.encode()  # a name that is not UTF-8 cannot travel in JSON
                        if entry.is_dir(follow_symlinks=False):
                            if entry.path != skip and not selected.prunes(location):
                                subfolders.append((entry.path, location + "/"))
                        elif selected.matches(location):
                            info = entry.stat(follow_symlinks=False)
                            size = self._size(entry.path, info)
                            if size is not None:
                                # a regular file's lstat is what read's fstat answers; a symlink's is not
                                version = file_version(info) if stat.S_ISREG(info.st_mode) else None
                                yield Item(location, location, size, version)
                    except (OSError, UnicodeEncodeError) as exc:
                        log.warning("entry skipped", extra={"location": ascii(location), "error": str(exc)})
            pending.extend(reversed(subfolders))  # listed in the order the folder gave them

    def _size(self, path: str, info: os.stat_result) -> int | None:
        """Size of a regular file, or of a symlink's target inside the asset; None to skip it."""
        if stat.S_ISREG(info.st_mode):
            return info.st_size
        if not stat.S_ISLNK(info.st_mode):
            return None  # sockets, fifos, devices
        real = os.path.realpath(path)
        if not is_within(real, self.root) or (self.quarantine and is_within(real, self.quarantine)):
            log.debug("symlink leading out of the asset skipped", extra={"path": path})
            return None
        target = os.stat(real)
        return target.st_size if stat.S_ISREG(target.st_mode) else None

    # ---- read and act ----------------------------------------------------------------------

    async def read(self, location: str) -> ItemContent:
        # Local reads of small files take microseconds: a thread hop would cost more than the read.
        # Network mounts that may stall set READ_IN_THREAD.
        if self.settings.read_in_thread:
            return await anyio.to_thread.run_sync(self._read, location)
        return self._read(location)

    def _read(self, location: str) -> ItemContent:
        try:
            fd, real = open_inside(self.root, location)
        except FileNotFoundError:
            raise NotFoundError(f"item not found: {location!r}") from None
        try:
            info = os.fstat(fd)
            if not stat.S_ISREG(info.st_mode):
                raise NotFoundError(f"not a file: {location!r}")
            if self.quarantine is not None and is_within(real, self.quarantine):
                raise OutsideAssetError(f"location is in the quarantine folder: {location!r}")
            version = file_version(info)
            if info.st_size <= SMALL_ITEM_BYTES:
                return ItemContent(size=info.st_size, data=_read_all(fd, info.st_size), version=version)
            # streamed from this very open file: the path opened again could be another file by
            # then (renamed over), whose bytes would be scanned and recorded under this version
            chunks, fd = _FileChunks(fd, info.st_size), -1
            return ItemContent(size=info.st_size, chunks=chunks, version=version, exact=True)
        finally:
            if fd >= 0:
                os.close(fd)

    async def act(self, location: str, action: RequestedAction, version: str | None = None) -> StatusResponse:
        return await anyio.to_thread.run_sync(self._act, location, action, version)

    def _act(self, location: str, action: RequestedAction, version: str | None = None) -> StatusResponse:
        path = self.resolve(location)
        if self.quarantine is not None and is_within(path, self.quarantine):
            raise OutsideAssetError(f"location is in the quarantine folder: {location!r}")
        relative = path.relative_to(self.root)
        try:
            source = open_folder(self.root, relative.parent.parts, create=False)
        except FileNotFoundError:
            raise NotFoundError(f"item not found: {location!r}") from None
        try:
            if action.type == ItemActionType.DELETE:
                private, _ = take_aside(source, relative.name, location, version)
                os.unlink(private, dir_fd=source)
                log.info("item deleted", extra={"location": location})
                return StatusResponse(status="success", message=f"deleted {location}")
            return self._move(location, action, version, source, relative)
        finally:
            os.close(source)

    def _move(
        self, location: str, action: RequestedAction, version: str | None, source: int, relative: Path
    ) -> StatusResponse:
        name = relative.name
        filename = action.destination.filename if action.destination else None
        if filename:
            given = relative_location(filename).parts
            if len(given) != 1:
                raise PermanentError(f"destination filename must be a plain name: {filename!r}")
            name = given[0]
        anchor, folder = self._destination(action)
        parts = folder.relative_to(anchor).parts + relative.parent.parts
        target = open_folder(anchor, parts, create=True)
        try:
            private, info = take_aside(source, relative.name, location, version)
            try:
                placed = move_file(source, private, target, name, info)
            except BaseException:
                put_back(source, private, relative.name)
                raise
        finally:
            os.close(target)
        # no symlink was followed from the real anchor: this is the file's real path
        destination = str(anchor.joinpath(*parts, placed))
        log.info("item moved", extra={"location": location, "destination": destination})
        note = " (a filesystem has no tags)" if action.type == ItemActionType.MOVE_TAG else ""
        return StatusResponse.model_validate(
            {"status": "success", "message": f"moved to {destination}{note}", "destination": destination}
        )

    def _destination(self, action: RequestedAction) -> tuple[Path, Path]:
        """The move's folder, and the folder to open it from: the asset, or a quarantine outside it."""
        requested = action.destination and (action.destination.path or action.destination.prefix)
        folder = _folder(self.root, requested) if requested else self.quarantine
        if folder is None:
            raise PermanentError("no quarantine folder configured (DSXCONNECTOR_ITEM_ACTION_MOVE_METAINFO)")
        if is_within(folder, self.root):
            return self.root, folder
        if self.quarantine is None or not is_within(folder, self.quarantine):
            raise OutsideAssetError(f"move destination outside the asset and quarantine: {requested!r}")
        os.makedirs(self.quarantine, exist_ok=True)
        return self.quarantine, folder

    async def check(self) -> None:
        if not (self.root.is_dir() and os.access(self.root, os.R_OK | os.X_OK)):
            raise RetryableError(f"asset {str(self.root)!r} is not a readable directory")

    # ---- monitoring ------------------------------------------------------------------------

    async def watch(self, stop: anyio.Event) -> AsyncGenerator[list[Item]]:
        """Added or modified files, debounced; the quarantine folder and filtered items are ignored."""
        s = self.settings
        async for changes in awatch(
            self.root,
            stop_event=stop,
            watch_filter=None,
            debounce=s.monitor_debounce_ms,
            step=min(50, s.monitor_debounce_ms),
            force_polling=s.monitor_force_polling,
            poll_delay_ms=s.monitor_poll_interval_ms,
            rust_timeout=1000,
        ):
            paths = sorted({path for change, path in changes if change != Change.deleted})
            items = await anyio.to_thread.run_sync(self._items_at, paths)
            if items:
                yield items

    def _items_at(self, paths: list[str]) -> list[Item]:
        items = []
        for path in paths:
            location = os.path.relpath(path, self.root).replace(os.sep, "/")
            if location.startswith("../") or (self.quarantine and is_within(path, self.quarantine)):
                continue
            if not self.filter.matches(location) or os.path.basename(path).startswith(MOVING_PREFIX):
                continue  # filtered, or taken aside by an action under way
            try:
                location.encode()
                size = self._size(path, os.lstat(path))
            except (OSError, UnicodeEncodeError):
                continue  # gone again before we looked
            if size is not None:
                items.append(Item(location, location, size))
        return items


def _folder(root: Path, value: str | None) -> Path | None:
    """A configured folder; relative ones live under the asset.

    Inside the asset a folder is taken as named, never through symlinks (whoever writes to the asset
    could plant them; its parts are opened with ``O_NOFOLLOW`` when used); elsewhere, its real path.
    """
    if not value or not value.strip():
        return None
    path = Path(os.path.normpath(root / Path(value.strip()).expanduser()))
    return path if is_within(path, root) else Path(os.path.realpath(path))


class _FileChunks:
    """The first ``size`` bytes of a large file (its size when versioned) from its open descriptor,
    ``STREAM_CHUNK_BYTES`` at a time, read in a worker thread. The descriptor is closed at the end,
    by ``aclose`` or when dropped. A file cut shorter meanwhile ends the stream short: the answer's
    Content-Length is then not met and the worker reads it again."""

    def __init__(self, fd: int, size: int) -> None:
        self._fd = fd
        self._left = size

    def __aiter__(self) -> _FileChunks:
        return self

    async def __anext__(self) -> bytes:
        if self._fd < 0:
            raise StopAsyncIteration
        want = min(STREAM_CHUNK_BYTES, self._left)
        chunk = await anyio.to_thread.run_sync(os.read, self._fd, want) if want else b""
        if not chunk:
            self.close()
            raise StopAsyncIteration
        self._left -= len(chunk)
        return chunk

    async def aclose(self) -> None:
        self.close()

    def close(self) -> None:
        fd, self._fd = self._fd, -1
        if fd >= 0:
            os.close(fd)

    def __del__(self) -> None:
        self.close()


def _read_all(fd: int, size: int) -> bytes:
    """The rest of the file, even if it grew or shrank since ``fstat``."""
    chunks = [os.read(fd, max(size, 1) + 1)]
    while chunks[-1]:
        chunks.append(os.read(fd, 1 << 16))
    return b"".join(chunks)
