"""Real emulators of the cloud storages for tests, started by :mod:`devstack.emulators` on free ports
and stopped by their fixture (moto, Azurite, gcp-storage-emulator; see that module's table).

When an emulator is not installed the calling test is skipped with the command that installs it;
with ``DSX_REQUIRE_EMULATORS=1`` (CI) it fails instead, so a broken install cannot pass silently.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from pathlib import Path

import pytest

from devstack import emulators as _emulators
from devstack.emulators import AZURITE_ACCOUNT, AZURITE_BLOB, AZURITE_KEY, Emulator, moto_require_auth

__all__ = [
    "AZURITE_ACCOUNT",
    "AZURITE_BLOB",
    "AZURITE_KEY",
    "Emulator",
    "azurite",
    "gcs_emulator",
    "missing",
    "moto_require_auth",
    "moto_server",
]


def missing(reason: str) -> None:
    """Skip the test for a missing emulator (fail when ``DSX_REQUIRE_EMULATORS`` is set)."""
    if os.environ.get("DSX_REQUIRE_EMULATORS", "").lower() in ("1", "true", "yes"):
        pytest.fail(f"{reason} (DSX_REQUIRE_EMULATORS is set)")
    pytest.skip(reason)


@contextmanager
def _installed(
    why: str, start: Callable[[Path], AbstractContextManager[Emulator]], log_dir: Path
) -> Iterator[Emulator]:
    if why:
        missing(why)
    with start(log_dir) as emulator:
        yield emulator


def moto_server(log_dir: Path) -> AbstractContextManager[Emulator]:
    """moto's S3 (every AWS service, in fact) on a free port; any access key is accepted."""
    return _installed(_emulators.moto_missing(), _emulators.moto_server, log_dir)


def azurite(log_dir: Path) -> AbstractContextManager[Emulator]:
    """Azurite's blob service in memory; the endpoint is the dev account's URL (path style)."""
    return _installed(_emulators.azurite_missing(), _emulators.azurite, log_dir)


def gcs_emulator(log_dir: Path) -> AbstractContextManager[Emulator]:
    """``gcp-storage-emulator`` in memory; clients reach it through ``STORAGE_EMULATOR_HOST``."""
    return _installed(_emulators.gcs_missing(), _emulators.gcs_emulator, log_dir)
