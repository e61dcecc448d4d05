"""The dashboard tests drive Debian's chromium; without it they skip (fail under DSX_REQUIRE_EMULATORS)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.support.emulators import missing

CHROMIUM = "/usr/bin/chromium"


@pytest.fixture(autouse=True, scope="session")
def _chromium_installed() -> None:
    """Checked before any stack or server of these tests starts (session scope: first)."""
    if not Path(CHROMIUM).exists():
        missing(f"{CHROMIUM} is absent (apt-get install chromium; `make test` does)")
