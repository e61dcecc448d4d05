"""File moves and deletes that follow no symlink and never lose a file that replaced the scanned one.

Every step works on descriptors of folders opened one part at a time with ``O_NOFOLLOW``, so a
symlink planted on the way (in the quarantine, say) is refused, not followed. The item is first
renamed to a private name in its own folder and checked there: a file that lands at the item's
name afterwards is not touched. Names are placed with ``link`` (which never overwrites) and the
old name unlinked; a move to another filesystem copies to a temporary name, then places that.

What a crash can leave: the item under ``.dsxconnect-moving-*`` in its folder (a retry then answers
404 and the next scan finds it again), or a ``.dsxconnect-partial-*`` copy in the destination.

The private names this process is using right now are kept in a set (:func:`in_use`): the watcher
ignores those, and only those. Anyone who can write to the asset can name a file
``.dsxconnect-moving-…`` too, and such a file is scanned like any other.
"""

from __future__ import annotations

import contextlib
import errno
import logging
import os
import secrets
import stat
from collections.abc import Sequence
from pathlib import Path

from shared.connector import ItemChangedError, check_version
from shared.errors import NotFoundError, OutsideAssetError

log = logging.getLogger(__name__)

MOVING_PREFIX = ".dsxconnect-moving-"
PARTIAL_PREFIX = ".dsxconnect-partial-"
_FOLDER = os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC
_COPY_CHUNK = 1 << 20
# link(2) refused by the filesystem (FAT, some SMB mounts) or by fs.protected_hardlinks
_NO_HARDLINKS = {errno.EPERM, errno.ENOTSUP, errno.EOPNOTSUPP, errno.ENOSYS, errno.EMLINK}
#: the private names of the items this process has taken aside and not yet released
_IN_USE: set[str] = set()


def in_use(name: str) -> bool:
    """Whether ``name`` is the private name of an item this process is deleting or moving now."""
    return name in _IN_USE


def release(private: str) -> None:
    """The item taken aside as ``private`` is deleted, moved or put back: its name is no longer ours."""
    _IN_USE.discard(private)


def file_version(info: os.stat_result) -> str:
    """A file's version (``shared.item_version``): ``dev:ino:size:mtime_ns``."""
    return f"{info.st_dev}:{info.st_ino}:{info.st_size}:{info.st_mtime_ns}"


def open_folder(anchor: Path, parts: Sequence[str], *, create: bool) -> int:
    """A descriptor of ``anchor/parts``; no part may be a symlink, missing ones are made if ``create``."""
    fd = os.open(anchor, _FOLDER)
    try:
        for depth, part in enumerate(parts, 1):
            if create:
                with contextlib.suppress(FileExistsError):
                    os.mkdir(part, dir_fd=fd)
            try:
                child = os.open(part, _FOLDER | os.O_NOFOLLOW, dir_fd=fd)
            except OSError as exc:
                if exc.errno not in (errno.ELOOP, errno.ENOTDIR):
                    raise
                on_the_way = str(anchor.joinpath(*parts[:depth]))
                raise OutsideAssetError(f"{on_the_way!r} is a symlink or a file, not a folder") from None
            os.close(fd)
            fd = child
    except BaseException:
        os.close(fd)
        raise
    return fd


def take_aside(folder: int, name: str, location: str, version: str | None) -> tuple[str, os.stat_result]:
    """Rename the file ``name`` to a private name in ``folder`` while it is the version scanned.

    Returns the private name and the file's stat. ``ItemChangedError`` (nothing changed) if the
    file is not that version, before or after the rename. Once the file is deleted, moved or put
    back, the caller gives its private name up with :func:`release`.
    """
    try:
        before = os.lstat(name, dir_fd=folder)
    except FileNotFoundError:
        raise NotFoundError(f"item not found: {location!r}") from None
    if not stat.S_ISREG(before.st_mode):
        raise NotFoundError(f"not a file: {location!r}")
    check_version(location, version, file_version(before))
    private = MOVING_PREFIX + secrets.token_hex(8)
    _IN_USE.add(private)  # before the rename: its watcher event must find it there
    try:
        os.rename(name, private, src_dir_fd=folder, dst_dir_fd=folder)
        taken = os.lstat(private, dir_fd=folder)
        if not stat.S_ISREG(taken.st_mode) or file_version(taken) != file_version(before):
            put_back(folder, private, name)
            raise ItemChangedError(f"item changed since it was scanned: {location!r}")
    except BaseException:
        release(private)
        raise
    return private, taken


def put_back(folder: int, private: str, name: str) -> None:
    """Give a file taken aside its name again, or ``name.1``… if another file took it meanwhile."""
    with contextlib.suppress(FileNotFoundError):
        placed = place(folder, private, folder, name)
        if placed != name:
            log.warning("item put back under another name", extra={"item": name, "name": placed})


def move_file(src: int, private: str, dst: int, name: str, info: os.stat_result) -> str:
    """Move the file taken aside into ``dst`` as ``name`` (or ``name.1``…); returns the name used.

    Renamed (linked) where it can be; copied, as across filesystems, when the file has other hard
    links: the quarantined file must not be the inode another name still holds, through which
    whoever owns that name could change or empty the evidence."""
    if info.st_nlink <= 1:
        try:
            return place(src, private, dst, name)
        except OSError as exc:
            if exc.errno != errno.EXDEV:
                raise
    partial = _copy_across(src, private, dst, info)
    try:
        placed = place(dst, partial, dst, name)
        os.fsync(dst)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(partial, dir_fd=dst)
        raise
    os.unlink(private, dir_fd=src)
    return placed


def place(src: int, src_name: str, dst: int, name: str) -> str:
    """Rename ``src_name`` to ``name`` (or ``name.1``…) without overwriting; returns the name used."""
    n = 0
    while True:
        candidate = f"{name}.{n}" if n else name
        n += 1
        try:
            os.link(src_name, candidate, src_dir_fd=src, dst_dir_fd=dst, follow_symlinks=False)
        except FileExistsError:
            continue
        except OSError as exc:
            if exc.errno not in _NO_HARDLINKS:
                raise
            if _exists(dst, candidate):
                continue
            # without hard links a concurrent writer of this very name could be overwritten
            os.rename(src_name, candidate, src_dir_fd=src, dst_dir_fd=dst)
            return candidate
        os.unlink(src_name, dir_fd=src)
        return candidate


def copy_bytes(src: int, dst: int) -> None:
    """Copy the rest of ``src`` into ``dst``."""
    while chunk := os.read(src, _COPY_CHUNK):
        view = memoryview(chunk)
        while view:
            view = view[os.write(dst, view) :]


def _copy_across(src: int, private: str, dst: int, info: os.stat_result) -> str:
    """A durable copy of ``private`` (mode and times kept) under a new temporary name in ``dst``."""
    partial = PARTIAL_PREFIX + secrets.token_hex(8)
    reading = os.open(private, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=src)
    try:
        flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
        writing = os.open(partial, flags, 0o600, dir_fd=dst)
        try:
            copy_bytes(reading, writing)
            os.fchmod(writing, stat.S_IMODE(info.st_mode))
            os.utime(writing, ns=(info.st_atime_ns, info.st_mtime_ns))
            os.fsync(writing)
        except BaseException:
            os.unlink(partial, dir_fd=dst)
            raise
        finally:
            os.close(writing)
    finally:
        os.close(reading)
    return partial


def _exists(folder: int, name: str) -> bool:
    try:
        os.lstat(name, dir_fd=folder)
    except FileNotFoundError:
        return False
    return True
