"""Which paths a scan by path may read: only regular files under the roots, no links, no '..'."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

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
