"""Fixtures of the dsxa_lite tests: one shared scanner process with small limits."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from .samples import sha256
from .servers import BLOCKED_BY_ENV, BLOCKED_BY_FILE, SMALL_LIMITS, Scanner, running_scanner


@pytest.fixture(scope="session")
def scanner(tmp_path_factory: pytest.TempPathFactory, logs_dir: Path) -> Iterator[Scanner]:
    """A scanner with small limits, a block list from env and file, debug logs, no token."""
    folder = tmp_path_factory.mktemp("dsxa-lite")
    blocklist = folder / "blocklist.txt"
    blocklist.write_text(f"# test block list\n{sha256(BLOCKED_BY_FILE)}  # one entry\n")
    spool = folder / "spool"
    spool.mkdir()
    env = {
        **SMALL_LIMITS,
        "DSXA_LITE_BLOCKLIST": sha256(BLOCKED_BY_ENV),
        "DSXA_LITE_BLOCKLIST_FILE": str(blocklist),
        "DSXA_LITE_SPOOL_DIR": str(spool),
        "LOG_LEVEL": "DEBUG",
    }
    with running_scanner("dsxa-lite", env, logs_dir) as running:
        yield running
