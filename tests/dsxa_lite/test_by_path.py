"""Which paths a scan by path may read: only regular files under the roots, no links, no '..'."""

from __future__ import annotations

import os
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from dsxa_lite.by_path import PathMissing, PathRefused, open_under_roots

pytestmark = pytest.mark.unit


@pytest.fixture
def tree(tmp_path: Path) -> tuple[Path, Path]:
    root = tmp_path / "root"
    (root / "sub").mkdir(parents=True)
    (root / "sub" / "file.txt").write_text("inside")
    outside = tmp_path / "outside.txt"
    outside.write_text("outside")
    return root.resolve(), outside.resolve()


def test_file_under_a_root_is_opened(tree: tuple[Path, Path]) -> None:
    root, _ = tree
    fd, path = open_under_roots(str(root / "sub" / "file.txt"), [root])
    try:
        assert os.read(fd, 100) == b"inside"
        assert path == root / "sub" / "file.txt"
    finally:
        os.close(fd)


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda root, outside: str(outside), "outside the scan roots"),
        (lambda root, outside: f"{root}/sub/../../outside.txt", "may not contain '..'"),
        (lambda root, outside: "sub/file.txt", "absolute"),
        (lambda root, outside: "", "missing or empty"),
        (lambda root, outside: str(root / "sub"), "not a regular file"),
    ],
    ids=["outside", "traversal", "relative", "empty", "folder"],
)
def test_paths_that_are_refused(
    tree: tuple[Path, Path], make: Callable[[Path, Path], str], message: str
) -> None:
    root, outside = tree
    with pytest.raises(PathRefused, match=message):
        open_under_roots(make(root, outside), [root])


def test_symbolic_links_are_refused_as_file_and_as_folder(tree: tuple[Path, Path]) -> None:
    root, outside = tree
    (root / "link.txt").symlink_to(outside)
    (root / "linked-dir").symlink_to(outside.parent)
    with pytest.raises(PathRefused, match="symbolic link"):
        open_under_roots(str(root / "link.txt"), [root])
    with pytest.raises(PathRefused, match="symbolic link"):
        open_under_roots(str(root / "linked-dir" / "outside.txt"), [root])


def test_missing_file_is_missing_and_no_roots_is_off(tree: tuple[Path, Path]) -> None:
    root, _ = tree
    with pytest.raises(PathMissing):
        open_under_roots(str(root / "nope.txt"), [root])
    with pytest.raises(PathRefused, match="no DSXA_LITE_SCAN_ROOTS"):
        open_under_roots(str(root / "sub" / "file.txt"), [])


def test_fifo_is_refused_without_waiting_for_a_writer(tree: tuple[Path, Path]) -> None:
    # opening a FIFO for reading blocks until a writer comes: on the event loop, the whole scanner
    root, _ = tree
    fifo = root / "sub" / "pipe"
    os.mkfifo(fifo)
    outcome: list[BaseException | None] = []

    def attempt() -> None:
        try:
            fd, _ = open_under_roots(str(fifo), [root])
            os.close(fd)
            outcome.append(None)
        except BaseException as exc:
            outcome.append(exc)

    worker = threading.Thread(target=attempt, daemon=True)
    worker.start()
    worker.join(timeout=5)
    if worker.is_alive():  # still blocked in open(): a writer releases it
        os.close(os.open(fifo, os.O_WRONLY | os.O_NONBLOCK))
        worker.join(timeout=5)
        pytest.fail("opening a FIFO under a root blocked")
    assert len(outcome) == 1 and isinstance(outcome[0], PathRefused), outcome
    assert "not a regular file" in str(outcome[0])


def test_folder_swapped_for_a_link_after_the_check_is_not_followed(
    tree: tuple[Path, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    # the race: the path is checked (no link in it), then a folder on it becomes a link to a
    # folder outside the roots before the file is opened; the swap is made right after the check
    root, outside = tree
    (root / "sub" / outside.name).write_text("inside")
    real_realpath = os.path.realpath
    swapped: list[bool] = []

    def realpath_then_swap(path: Any, *args: Any, **kwargs: Any) -> Any:
        answer = real_realpath(path, *args, **kwargs)
        if not swapped:
            swapped.append(True)
            (root / "sub").rename(root / "gone")
            (root / "sub").symlink_to(outside.parent)
        return answer

    monkeypatch.setattr(os.path, "realpath", realpath_then_swap)
    with pytest.raises((PathRefused, PathMissing)):
        fd, _ = open_under_roots(str(root / "sub" / outside.name), [root])
        try:
            read = os.read(fd, 100)
        finally:
            os.close(fd)
        pytest.fail(f"read {read!r} through a link swapped in after the check")
    assert swapped
