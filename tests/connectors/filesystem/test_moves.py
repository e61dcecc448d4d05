"""Moves and deletes that follow no symlink and never lose a file that replaced the scanned one."""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from connectors.filesystem import moving
from connectors.filesystem.connector import FilesystemConnector, file_version
from shared.connector import ItemChangedError
from shared.errors import OutsideAssetError
from shared.models import ActionDestination, ItemActionType, RequestedAction

pytestmark = pytest.mark.unit

MakeConnector = Callable[..., FilesystemConnector]
MOVE = RequestedAction(type=ItemActionType.MOVE)


def files_under(folder: Path) -> list[str]:
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*") if not p.is_dir())


def version_of(path: Path) -> str:
    return file_version(os.lstat(path))


def inject_during_copy(monkeypatch: pytest.MonkeyPatch, hook: Callable[[], None]) -> None:
    """Run ``hook`` in the middle of the move's cross-device copy, after its first bytes."""
    real = moving.copy_bytes

    def copying(src: int, dst: int) -> None:
        os.write(dst, os.read(src, 4))
        hook()
        real(src, dst)

    monkeypatch.setattr(moving, "copy_bytes", copying)


@pytest.fixture
def other_filesystem(tmp_path: Path) -> Iterator[Path]:
    """A folder on a filesystem other than ``tmp_path``'s (tmpfs ``/dev/shm``)."""
    if not os.path.isdir("/dev/shm") or os.stat("/dev/shm").st_dev == os.stat(tmp_path).st_dev:
        pytest.skip("needs /dev/shm on a filesystem other than the test's temporary folder")
    folder = Path(tempfile.mkdtemp(prefix="dsx-quarantine-", dir="/dev/shm"))
    yield folder
    shutil.rmtree(folder, ignore_errors=True)


def plant_in_default_quarantine(asset: Path, outside: Path) -> RequestedAction:
    (asset / "dsxconnect-quarantine/docs").symlink_to(outside)
    return MOVE


def plant_as_requested_subfolder(asset: Path, outside: Path) -> RequestedAction:
    (asset / "held").mkdir()
    (asset / "held/docs").symlink_to(outside)
    return RequestedAction(type=ItemActionType.MOVE, destination=ActionDestination(path="held"))


@pytest.mark.anyio
@pytest.mark.parametrize("plant", [plant_in_default_quarantine, plant_as_requested_subfolder])
async def test_a_move_never_follows_a_symlink_on_the_way_to_its_destination(
    make_connector: MakeConnector,
    asset: Path,
    tmp_path: Path,
    plant: Callable[[Path, Path], RequestedAction],
) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    connector = make_connector()
    action = plant(asset, outside)
    version = version_of(asset / "docs/report.pdf")
    with pytest.raises(OutsideAssetError):
        await connector.act("docs/report.pdf", action, version)
    assert os.listdir(outside) == []
    assert (asset / "docs/report.pdf").read_bytes() == b"%PDF-1.4 report"


@pytest.mark.anyio
@pytest.mark.parametrize("planted_before_start", [True, False])
async def test_a_quarantine_folder_replaced_by_a_symlink_is_not_followed(
    make_connector: MakeConnector, asset: Path, tmp_path: Path, planted_before_start: bool
) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    quarantine = asset / "dsxconnect-quarantine"

    def plant() -> None:
        shutil.rmtree(quarantine)
        quarantine.symlink_to(outside)

    if planted_before_start:
        plant()
    connector = make_connector()
    if not planted_before_start:
        plant()
    with pytest.raises(OutsideAssetError):
        await connector.act("top.txt", MOVE)
    assert os.listdir(outside) == []
    assert (asset / "top.txt").exists()


@pytest.mark.anyio
async def test_the_answer_names_the_real_path_the_file_went_to(
    make_connector: MakeConnector, asset: Path
) -> None:
    outcome = await make_connector().act("docs/deep/er/file.pdf", MOVE)
    destination = outcome.model_dump()["destination"]
    assert destination == os.path.realpath(destination)
    assert Path(destination).read_bytes() == b"%PDF deep"


@pytest.mark.anyio
async def test_a_quarantined_file_is_not_the_inode_another_hard_link_still_names(
    make_connector: MakeConnector, asset: Path, tmp_path: Path
) -> None:
    """Whoever planted the file with a second name (outside the asset) could rewrite the evidence
    through it once it was linked into the quarantine."""
    (tmp_path / "elsewhere").mkdir()
    planted = tmp_path / "elsewhere/handle"
    os.link(asset / "docs/deep/er/file.pdf", planted)
    outcome = await make_connector().act("docs/deep/er/file.pdf", MOVE)
    quarantined = Path(outcome.model_dump()["destination"])
    planted.write_bytes(b"nothing to see")
    assert quarantined.read_bytes() == b"%PDF deep"
    assert os.stat(quarantined).st_nlink == 1
    assert not (asset / "docs/deep/er/file.pdf").exists()


@pytest.mark.anyio
async def test_a_delete_says_when_other_hard_links_keep_the_content(
    make_connector: MakeConnector, asset: Path, tmp_path: Path
) -> None:
    os.link(asset / "docs/deep/er/file.pdf", tmp_path / "handle")
    outcome = await make_connector().act("docs/deep/er/file.pdf", RequestedAction(type=ItemActionType.DELETE))
    assert outcome.status == "success" and "1 other hard link" in outcome.message
    assert not (asset / "docs/deep/er/file.pdf").exists()


@pytest.mark.anyio
async def test_a_file_renamed_over_the_item_during_a_cross_device_copy_is_kept(
    make_connector: MakeConnector,
    asset: Path,
    other_filesystem: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    item = asset / "docs/report.pdf"
    (asset / "docs/.upload.tmp").write_bytes(b"the user's clean file")
    connector = make_connector(item_action_move_metainfo=str(other_filesystem))
    version = version_of(item)
    inject_during_copy(monkeypatch, lambda: os.rename(asset / "docs/.upload.tmp", item))

    outcome = await connector.act("docs/report.pdf", MOVE, version)

    assert outcome.status == "success"
    assert item.read_bytes() == b"the user's clean file"
    assert (other_filesystem / "docs/report.pdf").read_bytes() == b"%PDF-1.4 report"
    assert sorted(os.listdir(other_filesystem / "docs")) == ["report.pdf"]
    assert sorted(os.listdir(asset / "docs")) == ["deep", "notes.txt", "report.pdf"]


@pytest.mark.anyio
async def test_a_failed_cross_device_copy_leaves_nothing_under_the_quarantine_name(
    make_connector: MakeConnector,
    asset: Path,
    other_filesystem: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    item = asset / "docs/report.pdf"
    connector = make_connector(item_action_move_metainfo=str(other_filesystem))
    version = version_of(item)

    def fail() -> None:
        raise OSError(28, "No space left on device")

    inject_during_copy(monkeypatch, fail)
    with pytest.raises(OSError, match="No space"):
        await connector.act("docs/report.pdf", MOVE, version)
    monkeypatch.undo()

    assert files_under(other_filesystem) == []  # no partial copy, under any name
    assert version_of(item) == version  # the very file is back where it was
    assert sorted(os.listdir(asset / "docs")) == ["deep", "notes.txt", "report.pdf"]

    await connector.act("docs/report.pdf", MOVE, version)  # the retry completes the move
    with pytest.raises(Exception, match="not found"):
        await connector.act("docs/report.pdf", MOVE, version)  # and a second retry adds nothing
    assert os.listdir(other_filesystem / "docs") == ["report.pdf"]
    assert (other_filesystem / "docs/report.pdf").read_bytes() == b"%PDF-1.4 report"


@pytest.mark.anyio
@pytest.mark.parametrize("action", [MOVE, RequestedAction(type=ItemActionType.DELETE)])
async def test_an_item_swapped_just_before_the_action_is_put_back_and_answers_412(
    make_connector: MakeConnector, asset: Path, monkeypatch: pytest.MonkeyPatch, action: RequestedAction
) -> None:
    item = asset / "docs/report.pdf"
    (asset / "docs/.upload.tmp").write_bytes(b"the user's clean file")
    connector = make_connector()
    version = version_of(item)
    real_rename, real_unlink = os.rename, os.unlink
    swapped: list[bool] = []

    def swap_first() -> None:
        if not swapped:  # the user's sync client lands the clean file just before the connector acts
            swapped.append(True)
            real_rename(asset / "docs/.upload.tmp", item)

    def rename(*args: object, **kwargs: object) -> None:
        swap_first()
        real_rename(*args, **kwargs)  # type: ignore[arg-type]

    def unlink(*args: object, **kwargs: object) -> None:
        swap_first()
        real_unlink(*args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(os, "rename", rename)
    monkeypatch.setattr(os, "unlink", unlink)
    with pytest.raises(ItemChangedError) as raised:
        await connector.act("docs/report.pdf", action, version)
    monkeypatch.undo()

    assert raised.value.status_code == 412
    assert item.read_bytes() == b"the user's clean file"
    assert sorted(os.listdir(asset / "docs")) == ["deep", "notes.txt", "report.pdf"]
    assert files_under(asset / "dsxconnect-quarantine") == ["old/evil.exe"]


@pytest.mark.anyio
@pytest.mark.parametrize("action", [MOVE, RequestedAction(type=ItemActionType.DELETE)])
async def test_an_action_on_a_quarantined_item_is_refused(
    make_connector: MakeConnector, asset: Path, action: RequestedAction
) -> None:
    with pytest.raises(OutsideAssetError, match="quarantine"):
        await make_connector().act("dsxconnect-quarantine/old/evil.exe", action)
    assert (asset / "dsxconnect-quarantine/old/evil.exe").read_bytes() == b"MZ quarantined"


def test_the_monitor_ignores_only_the_items_this_process_has_taken_aside(
    make_connector: MakeConnector, asset: Path
) -> None:
    """Every name starting with the private prefix was ignored: anyone who can write to the asset
    could name malware ``.dsxconnect-moving-evil.exe`` and the monitor never submitted it."""
    planted = asset / "docs" / (moving.MOVING_PREFIX + "evil.exe")
    planted.write_bytes(b"MZ planted")
    connector = make_connector()
    folder = os.open(asset / "docs", os.O_RDONLY | os.O_DIRECTORY)
    try:
        private, _ = moving.take_aside(folder, "notes.txt", "docs/notes.txt", None)
        aside = str(asset / "docs" / private)
        try:
            items = connector._items_at([aside, str(planted), str(asset / "top.txt")])
            assert [item.location for item in items] == [f"docs/{planted.name}", "top.txt"]
        finally:
            moving.release(private)
        # no longer ours (a crash left it, say): a file like any other
        assert [item.location for item in connector._items_at([aside])] == [f"docs/{private}"]
    finally:
        os.close(folder)


@pytest.mark.anyio
async def test_actions_release_the_private_names_they_used(make_connector: MakeConnector) -> None:
    connector = make_connector()
    await connector.act("top.txt", MOVE)
    await connector.act("docs/notes.txt", RequestedAction(type=ItemActionType.DELETE))
    with pytest.raises(ItemChangedError):
        await connector.act("docs/report.pdf", MOVE, version="0:0:0:0")
    assert not moving._IN_USE


@pytest.mark.anyio
async def test_without_hard_links_a_move_still_never_overwrites(
    make_connector: MakeConnector, asset: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def no_link(*args: object, **kwargs: object) -> None:
        raise PermissionError(1, "Operation not permitted")  # FAT, SMB, fs.protected_hardlinks

    monkeypatch.setattr(os, "link", no_link)
    connector = make_connector()
    await connector.act("top.txt", MOVE)
    (asset / "top.txt").write_bytes(b"second")
    await connector.act("top.txt", MOVE)
    assert (asset / "dsxconnect-quarantine/top.txt").read_bytes() == b"top"
    assert (asset / "dsxconnect-quarantine/top.txt.1").read_bytes() == b"second"
