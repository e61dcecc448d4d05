"""Locations stay inside the asset (``shared.connector.locations``)."""

from __future__ import annotations

from pathlib import Path, PurePosixPath

import pytest

from shared.connector.locations import is_within, relative_location, resolve_inside
from shared.errors import OutsideAssetError

pytestmark = pytest.mark.unit


@pytest.mark.parametrize(
    ("location", "expected"),
    [("a/b.txt", "a/b.txt"), ("./a//b.txt", "a/b.txt"), ("a:b", "a:b"), ("dir/..x", "dir/..x")],
)
def test_relative_locations_are_normalised(location: str, expected: str) -> None:
    assert relative_location(location) == PurePosixPath(expected)


@pytest.mark.parametrize(
    "location",
    ["../etc/passwd", "a/../../x", "a/..", "..", "/etc/passwd", "//server/share", "\\\\server\\x", "C:/x", "c:",
     "a\\..\\b", "", "   ", ".", "a\x00b", "x" * 5000],
)  # fmt: skip
def test_escaping_or_malformed_locations_are_refused(location: str) -> None:
    with pytest.raises(OutsideAssetError):
        relative_location(location)


def test_resolve_inside_follows_symlinks_only_within_the_root(tmp_path: Path) -> None:
    root = tmp_path / "asset"
    (root / "sub").mkdir(parents=True)
    (root / "sub" / "real.txt").write_text("x")
    (tmp_path / "secret.txt").write_text("s")
    (root / "inner-link").symlink_to(root / "sub" / "real.txt")
    (root / "outer-link").symlink_to(tmp_path / "secret.txt")
    (root / "outer-dir").symlink_to(tmp_path)

    assert resolve_inside(root, "sub/real.txt") == root / "sub" / "real.txt"
    assert resolve_inside(root, "inner-link") == root / "sub" / "real.txt"
    assert resolve_inside(root, "missing.txt") == root / "missing.txt"
    for escaping in ("outer-link", "outer-dir/secret.txt", "../secret.txt", str(tmp_path / "secret.txt")):
        with pytest.raises(OutsideAssetError):
            resolve_inside(root, escaping)


def test_is_within() -> None:
    assert is_within("/a/b/c", "/a/b") and is_within("/a/b", "/a/b")
    assert not is_within("/a/bc", "/a/b") and not is_within("/a", "/a/b")
