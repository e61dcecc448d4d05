"""The filesystem watcher on a real directory tree: what an attacker who can write files there could
do to switch monitoring off or slip a file past it, and the catch-up after a watcher failure."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from collections.abc import AsyncGenerator, Callable
from pathlib import Path
from typing import Any

import anyio
import pytest
from watchfiles import Change
from watchfiles._rust_notify import WatchfilesRustInternalError

from connectors.filesystem import connector as connector_module
from connectors.filesystem import moving
from connectors.filesystem.connector import FilesystemConnector
from tests.support.procs import PYTHON, REPO_ROOT, base_env

MakeConnector = Callable[..., FilesystemConnector]
Step = tuple[Callable[[], object], set[str]]


async def watch_through(connector: FilesystemConnector, asset: Path, steps: list[Step]) -> list[str]:
    """Run the watcher until each step's locations were yielded after its action; what it yielded
    (probes left out). awatch has no "ready" hook: a probe is written until the watcher reports one."""
    stop = anyio.Event()
    seen: list[str] = []
    changed = anyio.Event()

    async def until(wanted: Callable[[], bool]) -> None:
        nonlocal changed
        while not wanted():
            await changed.wait()
            changed = anyio.Event()

    async def drive() -> None:
        probes = 0
        while not any(loc.startswith("probe-") for loc in seen):
            (asset / f"probe-{probes}.bin").write_bytes(b"p")
            probes += 1
            with anyio.move_on_after(0.1):
                await until(lambda: any(loc.startswith("probe-") for loc in seen))
        for act, wanted in steps:
            act()
            await until(lambda wanted=wanted: wanted <= set(seen))  # type: ignore[misc]
        stop.set()

    with anyio.fail_after(15):
        async with anyio.create_task_group() as group:
            group.start_soon(drive)
            async for items in connector.watch(stop):
                seen.extend(item.location for item in items)
                changed.set()
    return [loc for loc in seen if not loc.startswith("probe-")]


@pytest.mark.unit
@pytest.mark.anyio
async def test_a_name_that_is_not_utf8_does_not_stop_the_watcher(
    make_connector: MakeConnector, asset: Path
) -> None:
    """watchfiles raises on a name it cannot decode and drops the changes it had gathered: the
    watcher ended, and the runtime started it again later with nothing to find what it missed."""
    bad = os.path.join(os.fsencode(asset), b"\xff")
    try:
        os.close(os.open(bad, os.O_WRONLY | os.O_CREAT, 0o600))
        os.unlink(bad)
    except OSError:
        pytest.skip("this filesystem refuses names that are not UTF-8")

    def bad_name_then_ok() -> None:
        os.close(os.open(bad, os.O_WRONLY | os.O_CREAT, 0o600))
        (asset / "ok.exe").write_bytes(b"MZ dropped with the bad name")

    seen = await watch_through(
        make_connector(monitor_debounce_ms=50),
        asset,
        [
            (bad_name_then_ok, {"ok.exe"}),
            (lambda: (asset / "later.exe").write_bytes(b"MZ"), {"later.exe"}),  # and it goes on
        ],
    )
    assert {"ok.exe", "later.exe"} <= set(seen)


@pytest.mark.unit
@pytest.mark.anyio
async def test_a_folder_moved_into_the_asset_has_its_files_submitted(
    make_connector: MakeConnector, asset: Path, tmp_path: Path
) -> None:
    """The watcher reports a folder moved in as one path, a folder: nothing in it was submitted."""
    outside = tmp_path / "elsewhere/moved"
    (outside / "inner").mkdir(parents=True)
    (outside / "a.exe").write_bytes(b"MZ a")
    (outside / "inner/b.exe").write_bytes(b"MZ b")
    (outside / "skipped.tmp").write_bytes(b"filtered out")
    wanted = {"moved/a.exe", "moved/inner/b.exe"}
    seen = await watch_through(
        make_connector(monitor_debounce_ms=50, filter="-*.tmp"),
        asset,
        [(lambda: outside.rename(asset / "moved"), wanted)],
    )
    assert sorted(seen) == sorted(wanted)


@pytest.mark.unit
@pytest.mark.anyio
async def test_a_file_named_like_the_connectors_private_names_is_submitted(
    make_connector: MakeConnector, asset: Path
) -> None:
    """Every name with the prefix of the names an action takes a file aside under was ignored."""
    evil = moving.MOVING_PREFIX + "evil.exe"
    seen = await watch_through(
        make_connector(monitor_debounce_ms=50),
        asset,
        [(lambda: (asset / "docs" / evil).write_bytes(b"MZ evil"), {f"docs/{evil}"})],
    )
    assert seen == [f"docs/{evil}"]


@pytest.mark.unit
def test_a_folder_made_readable_is_walked_and_a_touched_one_is_not(
    make_connector: MakeConnector, asset: Path
) -> None:
    """A folder's attributes changing says nothing appeared in it, unless the watcher could not read
    it: then its files were never seen (a touch of a large folder must not send all its files)."""
    connector = make_connector()
    connector._unreadable = {str(asset / "docs")}  # as the watcher's start found it
    changes = [(Change.modified, str(asset / "docs")), (Change.modified, str(asset / "tmp"))]
    assert sorted(item.location for item in connector._changed(changes)) == [
        "docs/deep/er/file.pdf",
        "docs/notes.txt",
        "docs/report.pdf",
    ]
    assert connector._unreadable == set()  # readable now: walked once


@pytest.mark.unit
@pytest.mark.anyio
@pytest.mark.parametrize("fails", ["while it runs", "as it starts"])
async def test_a_failed_watcher_submits_what_changed_while_it_was_down(
    make_connector: MakeConnector, asset: Path, monkeypatch: pytest.MonkeyPatch, fails: str
) -> None:
    """Changes made between a watcher's failure and its restart were never submitted: nothing
    looked for them. Failing while it runs, it starts again by itself; failing as it starts, it
    raises (the runtime starts it again) and its next run catches up."""
    starts = 0

    def fake_awatch(*paths: Path, stop_event: anyio.Event, **options: Any) -> AsyncGenerator[set[Any]]:
        async def batches() -> AsyncGenerator[set[Any]]:
            nonlocal starts
            starts += 1
            if starts == 1:
                if fails == "as it starts":
                    raise PermissionError(13, "Permission denied")
                yield set()
                (asset / "lost.exe").write_bytes(b"MZ written while the watcher was down")
                raise WatchfilesRustInternalError('Unable to decode path "/x/\\xFF" to string')
            yield set()
            await stop_event.wait()

        return batches()

    monkeypatch.setattr(connector_module, "awatch", fake_awatch)
    connector = make_connector()
    stop = anyio.Event()
    seen: list[list[str]] = []
    with anyio.fail_after(10):
        if fails == "as it starts":
            with pytest.raises(PermissionError):
                async for _ in connector.watch(stop):
                    pass
            (asset / "lost.exe").write_bytes(b"MZ written while the watcher was down")
        async for items in connector.watch(stop):
            seen.append([item.location for item in items])
            stop.set()
    assert starts == 2
    assert "lost.exe" in seen[0]
    assert all(item.version for item in connector.walk())  # caught up with versions, as a scan lists


@pytest.mark.unit
def test_a_catch_up_takes_what_changed_since_and_whole_folders_moved_in(
    make_connector: MakeConnector, asset: Path, tmp_path: Path
) -> None:
    """Files moved in keep their modification time, and renaming a folder changes the folder's
    inode, not its files': the catch-up goes by change time (ctime), and a folder that changed is
    taken whole."""
    outside = tmp_path / "elsewhere/moved"
    (outside / "inner").mkdir(parents=True)
    (outside / "a.exe").write_bytes(b"MZ a")
    (outside / "inner/b.exe").write_bytes(b"MZ b")
    made = max(os.lstat(p).st_ctime_ns for p in [*asset.rglob("*"), *outside.rglob("*")])
    clock = tmp_path / "clock"
    clock.touch()
    while os.lstat(clock).st_ctime_ns <= made:  # until the filesystem's clock has moved on
        os.utime(clock)
    since = os.lstat(clock).st_ctime_ns
    outside.rename(asset / "moved")
    (asset / "docs/new.exe").write_bytes(b"MZ new")
    connector = make_connector()
    changed = sorted(item.location for item in connector._walk(str(asset), "", None, since=since))
    assert changed == ["docs/new.exe", "moved/a.exe", "moved/inner/b.exe"]


SCRIPT = """
import json, os, sys
import anyio
from connectors.filesystem.connector import FilesystemConnector
from connectors.filesystem.settings import FilesystemSettings

asset = sys.argv[1]
FOLDERS = sys.argv[2:]
try:
    os.listdir(os.path.join(asset, "locked"))
except PermissionError:
    pass
else:
    sys.exit(3)  # this process may read it: nothing to show

async def main():
    connector = FilesystemConnector(FilesystemSettings(asset=asset, monitor_debounce_ms=50))
    stop, seen = anyio.Event(), []

    async def drive():
        probes = 0
        while not any(loc.startswith("probe-") for loc in seen):
            with open(os.path.join(asset, f"probe-{probes}.bin"), "wb") as f:
                f.write(b"p")
            probes += 1
            await anyio.sleep(0.1)
        for folder in FOLDERS:
            with open(os.path.join(asset, folder, "new.exe"), "wb") as f:
                f.write(b"MZ new")

    with anyio.fail_after(20):
        async with anyio.create_task_group() as group:
            group.start_soon(drive)
            async for items in connector.watch(stop):
                seen.extend(item.location for item in items)
                if {f"{folder}/new.exe" for folder in FOLDERS} <= set(seen):
                    stop.set()
    print(json.dumps(sorted(loc for loc in seen if not loc.startswith("probe-"))))

anyio.run(main)
"""


@pytest.mark.integration
def test_a_folder_the_watcher_may_not_read_does_not_stop_it(asset: Path) -> None:
    """notify refuses a recursive watch over a folder it may not read: every (re)start of the watcher
    raised PermissionError, so a folder made unreadable switched monitoring off for good; told to
    ignore that, it leaves unwatched every folder its walk comes to after that one. Run in a process
    of its own, without the capabilities that let root read any folder."""
    locked = asset / "locked"
    (locked / "deeper").mkdir(parents=True)
    folders = ["docs", "docs/deep", "tmp", *(f"d{n}/sub" for n in range(8))]
    for folder in folders:
        (asset / folder).mkdir(parents=True, exist_ok=True)
    argv = [PYTHON, "-c", SCRIPT, str(asset), *folders]
    if os.geteuid() == 0:
        setpriv = shutil.which("setpriv")
        if setpriv is None:
            pytest.skip("root reads any folder, and setpriv is missing to drop that capability")
        drop = "-dac_override,-dac_read_search"
        argv = [setpriv, f"--inh-caps={drop}", f"--bounding-set={drop}", "--", *argv]
    locked.chmod(0)
    try:
        run = subprocess.run(argv, env=base_env(), cwd=REPO_ROOT, capture_output=True, timeout=60)
    finally:
        locked.chmod(0o700)
    if run.returncode == 3:
        pytest.skip("this process may read a folder with mode 000")
    assert run.returncode == 0, run.stderr.decode()[-3000:]
    assert json.loads(run.stdout.decode().splitlines()[-1]) == sorted(f"{f}/new.exe" for f in folders)
