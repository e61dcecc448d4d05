"""The filesystem connector: one ``Connector`` subclass over a directory tree."""

from __future__ import annotations

import contextlib
import errno
import logging
import os
import stat
import time
from collections.abc import AsyncGenerator, AsyncIterator, Iterator, Sequence
from contextlib import aclosing, contextmanager
from pathlib import Path

import anyio
import anyio.to_thread
from watchfiles import Change, awatch
from watchfiles._rust_notify import WatchfilesRustInternalError

from connectors.filesystem.manifest import MANIFEST
from connectors.filesystem.moving import (
    file_version,
    in_use,
    move_file,
    open_folder,
    put_back,
    release,
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
from shared.connector.locations import MAX_LOCATION
from shared.connector.responses import close_source
from shared.errors import DsxError, NotFoundError, OutsideAssetError, PermanentError, RetryableError
from shared.models import ItemActionType, RequestedAction, StatusResponse

log = logging.getLogger(__name__)

#: a folder of the walk: opened read-only, never through a symlink at its own name
_FOLDER = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
#: how far before the moment the watcher may have lost events a catch-up looks: change times come
#: from a coarse kernel clock (or a file server's), and a batch is cut a little before it arrives
_CATCH_UP_SLACK_NS = 2_000_000_000
#: a watcher that failed after this long running is restarted at once; sooner, after a growing delay
_WATCH_RESTART_RESET_S = 60.0
_WATCH_RESTART_MAX_S = 60.0
#: items per batch when a watcher event or a catch-up walks folders
_WATCH_BATCH = 256


class _FolderReplaced(OSError):
    """A folder waiting in the walk is no longer the one its parent listed (renamed over, or a path
    to it now leads through a symlink)."""


class FilesystemConnector(Connector[FilesystemSettings]):
    """Scans the directory ``DSXCONNECTOR_ASSET`` (a local disk or a mounted NFS/SMB share).

    Locations are paths relative to the asset, ``/``-separated; the display name is the same.

    Options: ``FILTER`` (see ``shared.connector.filters``), ``ITEM_ACTION`` = ``nothing``,
    ``delete``, ``move`` (to ``ITEM_ACTION_MOVE_METAINFO`` or the request's
    ``destination.path``, keeping the item's relative path) or ``movetag`` (a move: a
    filesystem has no tags); ``MONITOR`` watches for added or modified files and folders moved in,
    and catches up after a watcher failure (``watch``; ``MONITOR_FORCE_POLLING`` for mounts
    without inotify). A folder a scan cannot list is submitted as ``folder/``, whose read is
    refused naming why (``_walk``).

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
        #: the folders the watcher may not read (when it started, or when they appeared)
        self._unreadable: set[str] = set()

    def resolve(self, location: str) -> Path:
        """The real path of ``location``; refuses ``..``, absolute paths and symlinks leading out."""
        return resolve_inside(self.root, location)

    # ---- enumeration -----------------------------------------------------------------------

    def enumerate(self) -> AsyncIterator[Item]:
        """Walk the asset in a worker thread, a chunk of items at a time."""
        return iterate_in_thread(self.walk())

    def walk(self) -> Iterator[Item]:
        """Depth-first ``os.scandir`` walk of the asset as a generator (see :meth:`_walk`)."""
        return self._walk(str(self.root), "", None, since=None)

    def _walk(
        self, start: str, start_prefix: str, identity: tuple[int, int] | None, since: int | None
    ) -> Iterator[Item]:
        """The files under the folder ``start`` (location prefix ``start_prefix``), depth first.

        One folder is open at a time (its subfolders wait as paths): a tree deeper than the
        process's file-descriptor limit is listed whole. A waiting folder is opened without
        following a symlink at its name and must still be the folder its parent listed (device and
        inode): one swapped for a symlink, or reached through one swapped in above it, is not
        listed (files outside the asset were, with their names and sizes).

        A subfolder that cannot be listed (permission denied, a stale NFS handle, a path longer
        than the system allows, replaced meanwhile), or whose files' locations would be longer than
        a scan request holds, is submitted itself as ``folder/``: its read is refused naming why,
        so the job shows a Not Scanned result for it instead of completing without its files. The
        asset itself that cannot be listed raises: the scan fails naming it.

        ``since`` (nanoseconds): only what changed since then, for a watcher's catch-up: files whose
        inode changed (``st_ctime_ns``: written, created, renamed or moved in, which keeps the mtime),
        and every file under a folder renamed, moved in or made readable since (``_moved_in``).
        """
        selected = self.filter
        skip = str(self.quarantine) if self.quarantine else None
        # (path, location prefix, device and inode its parent listed, whether all its files count)
        pending: list[tuple[str, str, tuple[int, int] | None, bool]] = [
            (start, start_prefix, identity, since is None)
        ]
        while pending:
            path, prefix, identity, whole = pending.pop()
            fd = -1
            try:
                fd = _open_folder(path, identity)
                entries = os.scandir(fd)
            except OSError as exc:
                if fd >= 0:
                    os.close(fd)
                if not prefix:
                    raise  # the asset itself
                if exc.errno == errno.ENOENT:
                    continue  # removed meanwhile
                if exc.errno in (errno.ELOOP, errno.ENOTDIR):
                    # replaced by a symlink or a file: symlinked folders are not followed
                    log.warning("folder replaced during the walk, not followed", extra={"location": prefix})
                    continue
                if whole:
                    yield _unlisted(prefix, exc)
                continue
            reported = False
            subfolders: list[tuple[str, str, tuple[int, int] | None, bool]] = []
            with _closing_fd(fd), entries:  # its entries stat through fd: closed after them
                for entry in entries:
                    location = prefix + entry.name
                    try:
                        location.encode()  # a name that is not UTF-8 cannot travel in JSON
                        entry_path = os.path.join(path, entry.name)
                        if entry.is_dir(follow_symlinks=False):
                            if entry_path == skip or selected.prunes(location):
                                continue
                            info = entry.stat(follow_symlinks=False)
                            fresh = whole or _moved_in(info, since or 0)
                            if len(location) + 2 > MAX_LOCATION:  # nothing in it fits a scan request
                                if fresh and not reported:
                                    reported = True
                                    yield _unlisted(prefix, None)
                                continue
                            subfolders.append((entry_path, location + "/", (info.st_dev, info.st_ino), fresh))
                        elif selected.matches(location):
                            info = entry.stat(follow_symlinks=False)
                            if not whole and info.st_ctime_ns < (since or 0):
                                continue
                            if len(location) > MAX_LOCATION:
                                if not reported:
                                    reported = True
                                    yield _unlisted(prefix, None)
                                continue
                            size = self._size(entry_path, info)
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
        if location.endswith("/"):
            raise self._unlisted_folder(location)
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
            version: str | None = file_version(info)
            if info.st_size <= SMALL_ITEM_BYTES:
                data = _read_all(fd, info.st_size)
                if len(data) != info.st_size or file_version(os.fstat(fd)) != version:
                    # grown, cut or written while read: these bytes are not that version, and the
                    # scan cache and a guarded action must not take them for it
                    data, version = data[: info.st_size], None
                return ItemContent(size=len(data), data=data, version=version)
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
                private, taken = take_aside(source, relative.name, location, version)
                try:
                    os.unlink(private, dir_fd=source)
                finally:
                    release(private)
                others = taken.st_nlink - 1  # hard links elsewhere keep the content: say so
                log.info("item deleted", extra={"location": location, "other_links": others})
                kept = f" (its content lives on under {others} other hard link(s))" if others else ""
                return StatusResponse(status="success", message=f"deleted {location}{kept}")
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
                release(private)
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

    def _unlisted_folder(self, location: str) -> DsxError:
        """Why the read of ``folder/``, which a walk submits for a folder it could not list, is refused."""
        try:
            fd, real = open_inside(self.root, location)
        except (FileNotFoundError, NotADirectoryError):
            return NotFoundError(f"folder not found: {location!r}")
        except OSError as exc:
            return _folder_refused(location, exc)
        try:
            if self.quarantine is not None and is_within(real, self.quarantine):
                return OutsideAssetError(f"location is in the quarantine folder: {location!r}")
            with os.scandir(fd) as entries:
                next(entries, None)
        except OSError as exc:
            return _folder_refused(location, exc)
        finally:
            os.close(fd)
        return PermanentError(
            f"folder {location!r} was not listed whole by the walk that submitted it (it could not be "
            f"listed then, was replaced meanwhile, or holds locations longer than {MAX_LOCATION} "
            "characters): files in it were not scanned",
            status_code=400,
        )

    # ---- monitoring ------------------------------------------------------------------------

    async def watch(self, stop: anyio.Event) -> AsyncGenerator[list[Item]]:
        """Added or modified files, debounced; the quarantine folder and filtered items are ignored.

        A folder that appears (created, moved in) or changes (made readable again) is walked and
        its files submitted, with their versions like a full scan's. Folders this process may not
        read are left unwatched, not a reason to stop watching the others.

        A watcher that fails (watchfiles raises on a name that is not UTF-8 and drops the changes
        it had gathered) is started again, after a growing delay if it keeps failing, and once it
        runs again the files changed since the last changes it delivered are submitted: a walk that
        takes every file whose inode changed since then (``_walk``'s ``since``). One that cannot
        start raises; the runtime starts it again, and the catch-up comes when one runs. After a
        catch-up the watcher yields once even with nothing to submit (``[]``: it runs again).
        """
        s = self.settings
        delay, failed_at = 0.0, float("-inf")
        while not stop.is_set():
            mark = time.time_ns()  # changes from here on are the watcher's to deliver
            running = False
            try:
                folders = await anyio.to_thread.run_sync(self._watch_paths)
                watcher = awatch(
                    *folders,
                    stop_event=stop,
                    watch_filter=None,
                    debounce=s.monitor_debounce_ms,
                    step=min(50, s.monitor_debounce_ms),
                    force_polling=s.monitor_force_polling,
                    poll_delay_ms=s.monitor_poll_interval_ms,
                    rust_timeout=1000,
                    yield_on_timeout=True,  # so that a catch-up starts once the watcher runs
                    ignore_permission_denied=True,
                )
                async with aclosing(watcher) as batches:
                    async for changes in batches:
                        received, running = time.time_ns(), True
                        if self._lost_since is not None:
                            async with aclosing(self._batches(self._caught_up(self._lost_since))) as found:
                                async for items in found:
                                    yield items
                            self._lost_since = None
                        changed = sorted((c, path) for c, path in changes if c != Change.deleted)
                        if changed:
                            async with aclosing(self._batches(self._changed(changed))) as found:
                                async for items in found:
                                    if items:
                                        yield items
                        mark = received
                return
            except Exception as caught:
                exc = _watcher_failure(caught)
                if exc is None:
                    raise
                if self._lost_since is None or mark < self._lost_since:
                    self._lost_since = mark
                if not running:
                    raise exc from None
                now = time.monotonic()
                recent = now - failed_at < _WATCH_RESTART_RESET_S
                delay = min(max(delay * 2, 1.0), _WATCH_RESTART_MAX_S) if recent else 0.0
                failed_at = now
                log.error(
                    "watcher failed; it starts again, then submits what changed meanwhile",
                    extra={"error": str(exc), "restart_in_s": delay},
                )
                with anyio.move_on_after(delay):
                    await stop.wait()

    #: when the watcher may have started losing changes (``time.time_ns``); None while none are lost
    _lost_since: int | None = None

    def _watch_paths(self) -> list[str]:
        """The folders to watch (recursively): the asset, and, where it holds folders this process may
        not read, every readable folder beside those and beside each folder above them.

        notify's recursive watch gives up at the first folder it may not read, even told to ignore
        that: the folders its walk comes to after it are not watched at all (the watcher refused to
        start before ``ignore_permission_denied``). Each of those is watched as a path of its own."""
        root = str(self.root)
        unreadable: list[str] = []
        pending = [root]
        while pending:
            folder = pending.pop()
            try:
                with os.scandir(folder) as entries:
                    pending.extend(e.path for e in entries if e.is_dir(follow_symlinks=False))
            except OSError:
                unreadable.append(folder)
        self._unreadable = set(unreadable)
        above = {os.path.dirname(f) for f in unreadable if f != root}
        for folder in list(above):
            while folder != root:
                folder = os.path.dirname(folder)
                above.add(folder)
        paths = {root}
        for folder in above:
            with contextlib.suppress(OSError), os.scandir(folder) as entries:
                paths.update(e.path for e in entries if e.is_dir(follow_symlinks=False) and _readable(e.path))
        if unreadable:
            log.warning(
                "folders the watcher may not read are not watched",
                extra={"count": len(unreadable), "example": ascii(unreadable[0])},
            )
        return sorted(paths)

    def _caught_up(self, lost_since: int) -> Iterator[Item]:
        """What a catch-up submits: what changed since the watcher may have lost changes."""
        since = lost_since - _CATCH_UP_SLACK_NS
        log.info("catching up on changes the watcher may have missed", extra={"since_ns": since})
        return self._walk(str(self.root), "", None, since=since)

    async def _batches(self, items: Iterator[Item]) -> AsyncGenerator[list[Item]]:
        """``items`` (a blocking generator) pulled in a worker thread, in lists of ``_WATCH_BATCH``;
        at least one list, maybe empty."""
        batch: list[Item] = []
        sent = False
        pulled = iterate_in_thread(items, _WATCH_BATCH)
        try:
            async for item in pulled:
                batch.append(item)
                if len(batch) >= _WATCH_BATCH:
                    sent = True
                    yield batch
                    batch = []
        finally:
            await close_source(pulled)  # closes the walk, and the folder it has open
        if batch or not sent:
            yield batch

    def _items_at(self, paths: list[str]) -> list[Item]:
        """The items a watcher batch naming ``paths`` as added submits."""
        return list(self._changed([(Change.added, path) for path in paths]))

    def _changed(self, changes: Sequence[tuple[Change, str]]) -> Iterator[Item]:
        """The items behind ``changes`` (deleted ones left out): files, and the files under a folder
        that appeared, or that was unreadable and changed (made readable: walked then)."""
        for change, path in changes:
            if path == str(self.root):
                continue  # its own attributes changed: nothing appeared
            location = os.path.relpath(path, self.root).replace(os.sep, "/")
            if location.startswith("../") or (self.quarantine and is_within(path, self.quarantine)):
                continue
            if in_use(os.path.basename(path)):
                continue  # taken aside by an action of this process under way
            try:
                location.encode()
                info = os.lstat(path)
                if stat.S_ISDIR(info.st_mode):
                    if change == Change.added or path in self._unreadable:
                        # a touch of a readable folder is no reason to send all its files again
                        yield from self._walk_changed_folder(path)
                    continue
                if not self.filter.matches(location):
                    continue
                size = self._size(path, info)
            except (OSError, UnicodeEncodeError):
                continue  # gone again before we looked
            if size is not None and self._inside(os.path.realpath(path)):
                yield Item(location, location, size)

    def _inside(self, real: str) -> bool:
        """Whether the real path ``real`` lies in the asset, outside the quarantine. The watcher
        follows symlinked folders, out of the asset too: what it names is checked by its real path."""
        return is_within(real, self.root) and not (self.quarantine and is_within(real, self.quarantine))

    def _walk_changed_folder(self, path: str) -> Iterator[Item]:
        """The files under a folder that appeared or changed, as a walk of the asset finds them."""
        real = os.path.realpath(path)
        if real == str(self.root) or not self._inside(real):
            return
        location = os.path.relpath(real, self.root).replace(os.sep, "/")
        if self.filter.prunes(location):
            return
        info = os.lstat(real)
        if _readable(real):
            self._unreadable.discard(path)
        else:
            self._unreadable.add(path)
        yield from self._walk(real, location + "/", (info.st_dev, info.st_ino), since=None)


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
    """At most ``size + 1`` bytes from the start of the open file: one byte more than ``fstat`` said
    tells the caller the file grew. The rest of the file was read, however large it had grown (a
    10-byte file grown sparse to 50 GB was read whole, on the event loop)."""
    chunks: list[bytes] = []
    left = size + 1
    while left > 0:
        chunk = os.read(fd, left)
        if not chunk:
            break
        chunks.append(chunk)
        left -= len(chunk)
    return b"".join(chunks)


def _readable(folder: str) -> bool:
    try:
        os.close(os.open(folder, _FOLDER))
    except OSError:
        return False
    return True


def _watcher_failure(exc: Exception) -> Exception | None:
    """What failed the watcher, if it is a watcher's failure: an ``OSError`` or watchfiles' error,
    alone or the only errors of the group watchfiles' task group raises."""
    failures = (WatchfilesRustInternalError, OSError)
    if isinstance(exc, failures):
        return exc
    if isinstance(exc, ExceptionGroup):
        matched, rest = exc.split(failures)
        if matched is not None and rest is None:
            return _watcher_failure(matched.exceptions[0])
    return None


def _moved_in(folder: os.stat_result, since: int) -> bool:
    """Whether a folder's own inode changed since ``since`` (renamed, moved in, its mode changed) but
    not its entries: a folder moved in keeps its files' change times, so all of them are new here.
    A folder whose entries changed too is not taken whole (one file added to a large folder would
    send them all): its files go by their own change times."""
    return folder.st_ctime_ns >= since > folder.st_mtime_ns


def _open_folder(path: str, identity: tuple[int, int] | None) -> int:
    """A descriptor of the folder ``path``, opened without following a symlink at its name; with
    ``identity``, it must be that folder (device, inode) or ``_FolderReplaced`` is raised."""
    fd = os.open(path, _FOLDER)
    if identity is not None:
        try:
            info = os.fstat(fd)
            if (info.st_dev, info.st_ino) != identity:
                raise _FolderReplaced(errno.ESTALE, "replaced by another folder during the walk", path)
        except BaseException:
            os.close(fd)
            raise
    return fd


@contextmanager
def _closing_fd(fd: int) -> Iterator[int]:
    try:
        yield fd
    finally:
        os.close(fd)


def _unlisted(prefix: str, exc: OSError | None) -> Item:
    """The item a walk submits for the folder ``prefix`` it could not list whole: its read is refused
    naming why (``FilesystemConnector._unlisted_folder``), so its job shows it as Not Scanned."""
    why = "its files' locations are too long" if exc is None else (exc.strerror or str(exc))
    log.warning(
        "folder not listed whole; submitted so that its result names it",
        extra={"location": prefix, "error": why},
    )
    return Item(prefix, prefix, None)


def _folder_refused(location: str, exc: OSError) -> PermanentError:
    return PermanentError(
        f"folder {location!r} could not be listed, files in it were not scanned: {exc.strerror or exc}",
        status_code=403 if isinstance(exc, PermissionError) else 400,
    )
