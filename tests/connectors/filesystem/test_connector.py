"""The filesystem connector on a real directory tree: resolve, walk, read, act, watch."""

from __future__ import annotations

import inspect
import os
import shutil
from collections.abc import Callable
from pathlib import Path

import anyio
import pytest

from connectors.filesystem import connector as connector_module
from connectors.filesystem.connector import FilesystemConnector, _read_all
from connectors.filesystem.settings import FilesystemSettings
from shared.errors import NotFoundError, OutsideAssetError, PermanentError
from shared.models import ActionDestination, ItemActionType, RequestedAction

pytestmark = pytest.mark.unit

MakeConnector = Callable[..., FilesystemConnector]
EXPECTED = ["docs/deep/er/file.pdf", "docs/notes.txt", "docs/report.pdf", "tmp/cache.bin", "top.txt"]


def locations(connector: FilesystemConnector) -> list[str]:
    return sorted(item.location for item in connector.walk())


def folder_of(listed: int | str) -> str:
    """The folder an ``os.scandir`` call lists: the walk lists folders by descriptor."""
    return os.readlink(f"/proc/self/fd/{listed}") if isinstance(listed, int) else listed


def test_resolve_refuses_escapes(make_connector: MakeConnector, asset: Path, tmp_path: Path) -> None:
    (tmp_path / "outside.txt").write_text("secret")
    (asset / "link-out").symlink_to(tmp_path / "outside.txt")
    (asset / "dir-out").symlink_to(tmp_path)
    connector = make_connector()
    assert connector.resolve("docs/notes.txt") == asset / "docs" / "notes.txt"
    for bad in ("../outside.txt", "docs/../../outside.txt", str(tmp_path / "outside.txt"), "link-out",
                "dir-out/outside.txt"):  # fmt: skip
        with pytest.raises(OutsideAssetError):
            connector.resolve(bad)


def test_walk_covers_the_tree_and_skips_the_quarantine(make_connector: MakeConnector) -> None:
    connector = make_connector()
    assert locations(connector) == EXPECTED
    sizes = {item.location: item.size for item in connector.walk()}
    assert sizes["top.txt"] == 3 and sizes["docs/report.pdf"] == 15
    assert all(item.metainfo == item.location for item in connector.walk())


def test_walk_honours_the_filter(make_connector: MakeConnector) -> None:
    assert locations(make_connector(filter="*.pdf")) == ["docs/deep/er/file.pdf", "docs/report.pdf"]
    assert locations(make_connector(filter="-tmp,-**/*.txt")) == ["docs/deep/er/file.pdf", "docs/report.pdf"]
    assert locations(make_connector(filter="docs/*")) == [
        "docs/deep/er/file.pdf",
        "docs/notes.txt",
        "docs/report.pdf",
    ]


def test_walk_does_not_enter_excluded_folders(
    make_connector: MakeConnector, asset: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    opened: list[str] = []
    real_scandir = os.scandir

    def recording_scandir(path: int) -> os._ScandirIterator[str]:
        opened.append(os.path.relpath(folder_of(path), asset))
        return real_scandir(path)

    monkeypatch.setattr(os, "scandir", recording_scandir)
    assert locations(make_connector(filter="-docs")) == ["tmp/cache.bin", "top.txt"]
    assert "docs" not in opened and "dsxconnect-quarantine" not in opened


def test_walk_is_a_lazy_generator(
    make_connector: MakeConnector, asset: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for n in range(20):
        (asset / f"many/d{n:02d}").mkdir(parents=True)
        (asset / f"many/d{n:02d}/f.bin").write_bytes(b"x")
    opened = 0
    real_scandir = os.scandir

    def counting_scandir(path: int) -> os._ScandirIterator[str]:
        nonlocal opened
        opened += 1
        return real_scandir(path)

    monkeypatch.setattr(os, "scandir", counting_scandir)
    walk = make_connector().walk()
    assert inspect.isgenerator(walk) and opened == 0  # nothing read before the first item is asked for
    next(walk)
    assert opened < 5  # the first item came before most folders were opened
    walk.close()
    assert sum(1 for _ in make_connector().walk()) == len(EXPECTED) + 20


def test_a_tree_deeper_than_the_descriptor_limit_is_listed_whole_with_one_folder_open(
    make_connector: MakeConnector, asset: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Each level of the walk kept its folder open: past the process's descriptor limit (1,024 by
    default) whole subtrees were dropped with a warning while the scan completed."""
    deep = asset / "deep"
    for level in range(200):
        deep = deep / f"l{level}"
    deep.mkdir(parents=True)
    (deep / "bottom.txt").write_text("x")
    open_now = peak = 0
    real_scandir = os.scandir

    class Counted:
        def __init__(self, path: int) -> None:
            nonlocal open_now, peak
            self.inner = real_scandir(path)
            open_now += 1
            peak = max(peak, open_now)

        def __iter__(self) -> Counted:
            return self

        def __next__(self) -> os.DirEntry[str]:
            return next(self.inner)

        def __enter__(self) -> Counted:
            return self

        def __exit__(self, *exc: object) -> None:
            nonlocal open_now
            self.inner.close()
            open_now -= 1

    monkeypatch.setattr(os, "scandir", Counted)
    found = locations(make_connector())
    assert found == sorted([*EXPECTED, "deep/" + "/".join(f"l{n}" for n in range(200)) + "/bottom.txt"])
    assert peak == 1 and open_now == 0


@pytest.mark.parametrize(
    ("failure", "status"),
    [(PermissionError(13, "Permission denied"), 403), (OSError(116, "Stale file handle"), 400)],
)
@pytest.mark.anyio
async def test_a_folder_that_cannot_be_listed_is_submitted_so_its_job_shows_why(
    make_connector: MakeConnector, monkeypatch: pytest.MonkeyPatch, failure: OSError, status: int
) -> None:
    """A subfolder that could not be listed was skipped with a log line (permission denied: the job
    completed with its files unscanned and unreported) or stopped the whole scan (any other error).
    It is now an item whose read is refused naming why (a Not Scanned result), and the walk goes on."""
    real_scandir = os.scandir
    unlistable = {"docs"}

    def failing(listed: int) -> os._ScandirIterator[str]:
        if os.path.basename(folder_of(listed)) in unlistable:
            raise failure
        return real_scandir(listed)

    monkeypatch.setattr(os, "scandir", failing)
    connector = make_connector()
    assert locations(connector) == ["docs/", "tmp/cache.bin", "top.txt"]
    with pytest.raises(PermanentError, match=f"'docs/' could not be listed.*{failure.strerror}") as refused:
        await connector.read("docs/")
    assert refused.value.status_code == status
    unlistable.add("asset")  # the asset itself: the scan fails naming it, never "completed"
    with pytest.raises(OSError, match=failure.strerror or ""):
        locations(connector)


def test_a_tree_deeper_than_a_path_may_be_is_walked_past_and_reported(
    make_connector: MakeConnector, asset: Path
) -> None:
    """A folder whose path is longer than the system allows (ENAMETOOLONG) stopped the whole
    enumeration; it is reported as an item and the rest of the asset is listed."""
    name = "d" * 200
    fd = os.open(asset, os.O_RDONLY | os.O_DIRECTORY)
    for _ in range(25):  # 5,000 characters: past PATH_MAX (4,096) and a location's limit
        os.mkdir(name, dir_fd=fd)
        deeper = os.open(name, os.O_RDONLY | os.O_DIRECTORY, dir_fd=fd)
        os.close(fd)
        fd = deeper
    os.close(os.open("bottom.exe", os.O_WRONLY | os.O_CREAT, 0o600, dir_fd=fd))
    os.close(fd)
    (asset / "zz").mkdir()
    (asset / "zz/after.txt").write_text("listed after the deep tree")
    found = locations(make_connector())
    reported = [loc for loc in found if loc.endswith("/")]
    assert sorted(set(found) - set(reported)) == sorted([*EXPECTED, "zz/after.txt"])
    assert len(reported) == 1 and reported[0].startswith(f"{name}/{name}/") and len(reported[0]) <= 4096


@pytest.mark.parametrize("swap", ["the folder", "a folder above it"])
def test_a_folder_swapped_for_a_symlink_during_the_walk_lists_nothing_outside(
    tmp_path: Path, swap: str
) -> None:
    """Waiting folders were kept as paths and listed with ``os.scandir(path)``, which follows
    symlinks: one swapped for a link to another folder after its parent was listed had the files
    there listed and submitted (names and sizes out of the asset, or a job as large as ``/``)."""
    root = tmp_path / "asset"
    for location in ("one/a.txt", "two/b.txt", "two/sub/c.txt"):
        (root / location).parent.mkdir(parents=True, exist_ok=True)
        (root / location).write_text(location)
    outside = tmp_path / "outside"
    (outside / "sub").mkdir(parents=True)
    (outside / "secret").write_text("s")
    (outside / "sub/secret").write_text("s")
    walk = FilesystemConnector(FilesystemSettings(asset=str(root))).walk()
    seen = [next(walk).location]
    if swap == "the folder":  # swapped before it is opened
        other = "two" if seen[0].startswith("one/") else "one"
        shutil.rmtree(root / other)
    else:  # "two" is being listed: "two/sub" waits as a path that now leads out through "two"
        while seen[-1] != "two/b.txt":
            seen.append(next(walk).location)
        other = "two"
        (root / "two").rename(tmp_path / "two-elsewhere")
    (root / other).symlink_to(outside, target_is_directory=True)
    seen.extend(item.location for item in walk)
    assert not [loc for loc in seen if "secret" in loc]
    if swap == "a folder above it":
        assert "two/sub/" in seen  # reported: its read names why


def test_symlinks_inside_are_scanned_and_those_leading_out_are_skipped(
    make_connector: MakeConnector, asset: Path, tmp_path: Path
) -> None:
    (tmp_path / "outside.txt").write_text("secret")
    (asset / "link-in.txt").symlink_to(asset / "top.txt")
    (asset / "link-out.txt").symlink_to(tmp_path / "outside.txt")
    (asset / "dir-link").symlink_to(asset / "docs")  # folders behind links are not walked twice
    (asset / "dangling").symlink_to(asset / "nowhere")
    found = {item.location: item.size for item in make_connector().walk()}
    assert found["link-in.txt"] == 3
    assert "link-out.txt" not in found and "dangling" not in found
    assert not any(loc.startswith("dir-link") for loc in found)


@pytest.mark.anyio
async def test_enumerate_streams_items_from_a_thread(make_connector: MakeConnector) -> None:
    connector = make_connector(filter="*.txt")
    assert sorted([item.location async for item in connector.enumerate()]) == ["docs/notes.txt", "top.txt"]
    estimate = await make_connector().estimate()
    assert (estimate.count, estimate.confidence, estimate.bytes) == (5, "exact", 3 + 15 + 5 + 9 + 2)


@pytest.mark.anyio
async def test_read_returns_small_files_in_memory_and_streams_large_ones_from_the_file_it_versioned(
    make_connector: MakeConnector, asset: Path
) -> None:
    """A large file is streamed from the descriptor its version was read from: a file renamed over
    the path meanwhile is not what is scanned under the first one's version (it was: the path was
    opened again to stream)."""
    first, other = os.urandom(2 * 1024 * 1024), os.urandom(2 * 1024 * 1024)
    (asset / "big.bin").write_bytes(first)
    connector = make_connector()
    small = await connector.read("top.txt")
    assert small.data == b"top" and small.chunks is None
    big = await connector.read("big.bin")
    assert big.data is None and big.chunks is not None and big.size == 2 * 1024 * 1024
    (asset / "other.bin").write_bytes(other)
    os.replace(asset / "other.bin", asset / "big.bin")  # renamed over, before the bytes are sent
    assert b"".join([chunk async for chunk in big.chunks]) == first
    assert big.version != (await connector.read("big.bin")).version
    unread = await connector.read("big.bin")
    assert unread.chunks is not None
    fd_count = len(os.listdir("/proc/self/fd"))
    await unread.chunks.aclose()  # never read (a read group's size check): its descriptor is closed
    assert len(os.listdir("/proc/self/fd")) == fd_count - 1
    with pytest.raises(NotFoundError):
        await connector.read("missing.txt")
    with pytest.raises(NotFoundError):
        await connector.read("docs")  # a folder is not an item


def test_a_small_file_grown_after_its_size_was_taken_is_read_no_further(asset: Path) -> None:
    """The read went on to the end of the file, however large it had grown: a 10-byte file grown
    sparse to 64 MiB (50 GB as easily) was read whole into memory, on the event loop by default."""
    path = asset / "grows.bin"
    path.write_bytes(b"0123456789")
    fd = os.open(path, os.O_RDONLY)
    try:
        os.truncate(path, 64 << 20)
        data = _read_all(fd, 10)
    finally:
        os.close(fd)
    assert data == b"0123456789\x00"  # one byte more says it grew


@pytest.mark.anyio
@pytest.mark.parametrize("change", ["grown", "cut"])
async def test_a_small_file_changed_while_read_is_answered_without_a_version(
    make_connector: MakeConnector, asset: Path, monkeypatch: pytest.MonkeyPatch, change: str
) -> None:
    """Bytes read after the file changed were answered under the version taken before: the scan
    cache recorded their verdict, and a guarded action acted, under a version they are not."""
    path = asset / "changing.bin"
    path.write_bytes(b"first bytes")
    real_read_all = connector_module._read_all

    def changed_meanwhile(fd: int, size: int) -> bytes:
        with path.open("ab" if change == "grown" else "r+b") as file:
            file.write(b" and more") if change == "grown" else file.truncate(5)
        return real_read_all(fd, size)

    monkeypatch.setattr(connector_module, "_read_all", changed_meanwhile)
    content = await make_connector().read("changing.bin")
    assert content.version is None
    assert content.data == (b"first bytes" if change == "grown" else b"first")
    assert content.size == len(content.data)
    monkeypatch.undo()
    steady = await make_connector().read("changing.bin")
    assert steady.version is not None and steady.data == path.read_bytes()


def delete() -> RequestedAction:
    return RequestedAction(type=ItemActionType.DELETE)


@pytest.mark.anyio
async def test_delete_removes_the_file(make_connector: MakeConnector, asset: Path) -> None:
    outcome = await make_connector().act("docs/notes.txt", delete())
    assert outcome.status == "success" and not (asset / "docs/notes.txt").exists()
    with pytest.raises(NotFoundError):
        await make_connector().act("docs/notes.txt", delete())


@pytest.mark.anyio
async def test_move_keeps_the_relative_path_and_never_overwrites(
    make_connector: MakeConnector, asset: Path, tmp_path: Path
) -> None:
    quarantine = tmp_path / "quarantine"
    connector = make_connector(item_action_move_metainfo=str(quarantine))
    outcome = await connector.act("docs/deep/er/file.pdf", RequestedAction(type=ItemActionType.MOVE))
    assert outcome.status == "success"
    assert (quarantine / "docs/deep/er/file.pdf").read_bytes() == b"%PDF deep"
    assert not (asset / "docs/deep/er/file.pdf").exists()

    (asset / "docs/deep/er/file.pdf").write_bytes(b"second")
    await connector.act("docs/deep/er/file.pdf", RequestedAction(type=ItemActionType.MOVE_TAG))
    assert (quarantine / "docs/deep/er/file.pdf.1").read_bytes() == b"second"
    assert (quarantine / "docs/deep/er/file.pdf").read_bytes() == b"%PDF deep"


@pytest.mark.anyio
async def test_move_to_the_default_quarantine_inside_the_asset(
    make_connector: MakeConnector, asset: Path
) -> None:
    await make_connector().act("top.txt", RequestedAction(type=ItemActionType.MOVE))
    assert (asset / "dsxconnect-quarantine/top.txt").read_bytes() == b"top"


@pytest.mark.anyio
async def test_move_to_a_requested_destination_must_stay_inside(
    make_connector: MakeConnector, asset: Path, tmp_path: Path
) -> None:
    connector = make_connector()
    inside = RequestedAction(
        type=ItemActionType.MOVE, destination=ActionDestination(path="held", filename="x.pdf")
    )
    await connector.act("docs/report.pdf", inside)
    assert (asset / "held/docs/x.pdf").read_bytes() == b"%PDF-1.4 report"
    outside = RequestedAction(
        type=ItemActionType.MOVE, destination=ActionDestination(path=str(tmp_path / "else"))
    )
    with pytest.raises(OutsideAssetError):
        await connector.act("top.txt", outside)
    assert (asset / "top.txt").exists()


@pytest.mark.anyio
async def test_watch_reports_new_files_but_not_the_quarantine(
    make_connector: MakeConnector, asset: Path
) -> None:
    connector = make_connector(monitor_debounce_ms=50, filter="-*.tmp")
    stop = anyio.Event()
    seen: list[str] = []

    async def drop_files() -> None:
        # awatch has no "ready" hook: touch a probe until the watcher reports it, then the real files
        while not any(loc.startswith("probe") for loc in seen):
            (asset / f"probe-{len(os.listdir(asset))}.bin").write_bytes(b"p")
            await anyio.sleep(0.1)
        (asset / "dsxconnect-quarantine/ignored.bin").write_bytes(b"q")
        (asset / "skipped.tmp").write_bytes(b"t")
        (asset / "docs/new.bin").write_bytes(b"new file")

    with anyio.fail_after(15):
        async with anyio.create_task_group() as group:
            group.start_soon(drop_files)
            async for items in connector.watch(stop):
                seen.extend(item.location for item in items)
                if "docs/new.bin" in seen:
                    stop.set()
    assert [loc for loc in seen if not loc.startswith("probe")] == ["docs/new.bin"]


def test_names_that_are_not_utf8_are_skipped(make_connector: MakeConnector, asset: Path) -> None:
    try:
        (asset / os.fsdecode(b"latin1-\xe9.txt")).write_bytes(b"x")
    except (OSError, UnicodeEncodeError):
        pytest.skip("this filesystem refuses non-UTF-8 names")
    (asset / "utf8-é.txt").write_bytes(b"y")
    found = locations(make_connector())
    assert "utf8-é.txt" in found and len(found) == len(EXPECTED) + 1
