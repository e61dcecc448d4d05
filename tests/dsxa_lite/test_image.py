"""The image binds every interface explicitly (the process itself binds 127.0.0.1 by default)."""

from __future__ import annotations

from pathlib import Path

import pytest

pytestmark = pytest.mark.unit

DOCKERFILE = Path(__file__).resolve().parents[2] / "dsxa_lite" / "Dockerfile"


def test_image_sets_dsxa_lite_host_to_all_interfaces() -> None:
    text = DOCKERFILE.read_text()
    assert "DSXA_LITE_HOST=0.0.0.0" in text
    assert 'CMD ["python", "-m", "dsxa_lite"]' in text  # the entry point that reads DSXA_LITE_HOST


def test_image_installs_the_archive_libraries() -> None:
    requirements = (DOCKERFILE.parent / "requirements.txt").read_text()
    for package in ("pyzipper", "py7zr", "puremagic", "yara-x"):
        assert package in requirements
