"""Real emulators of the cloud storages, started for tests on free ports and stopped by their fixture.

| storage | emulator | installed by |
| --- | --- | --- |
| AWS S3 | moto in server mode (``python -m moto.server``) | ``make deps`` (the ``test`` extra: ``moto[server]``) |
| Azure Blob Storage | Azurite's blob service, from npm (``scripts/deps/node_modules/.bin/azurite-blob``) | ``bash scripts/ensure-deps.sh node`` (``make deps``; needs npm) |
| Google Cloud Storage | ``gcp-storage-emulator`` | ``make deps`` (the ``test`` extra) |

Each context manager yields an :class:`Emulator` once the emulator answers HTTP, and stops it on
exit. When the emulator is not installed the calling test is skipped with the command that
installs it; with ``DSX_REQUIRE_EMULATORS=1`` (CI) it fails instead, so a broken install cannot
pass silently.
"""

from __future__ import annotations

import importlib.util
import os
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from tests.support.procs import PYTHON, REPO_ROOT, ServiceProcess, base_env, free_port, wait_for

AZURITE_BLOB = REPO_ROOT / "scripts" / "deps" / "node_modules" / ".bin" / "azurite-blob"
#: Azurite's well-known development account and key, published in its documentation (not a secret)
AZURITE_ACCOUNT = "devstoreaccount1"
AZURITE_KEY = "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="


@dataclass(frozen=True)
class Emulator:
    """A running emulator: its base URL and the process behind it."""

    name: str
    endpoint: str
    process: ServiceProcess


def missing(reason: str) -> None:
    """Skip the test for a missing emulator (fail when ``DSX_REQUIRE_EMULATORS`` is set)."""
    if os.environ.get("DSX_REQUIRE_EMULATORS", "").lower() in ("1", "true", "yes"):
        pytest.fail(f"{reason} (DSX_REQUIRE_EMULATORS is set)")
    pytest.skip(reason)


@contextmanager
def _running(
    name: str, argv: list[str], port: int, log_dir: Path, ready: Callable[[str], bool], endpoint: str = ""
) -> Iterator[Emulator]:
    base = f"http://127.0.0.1:{port}"
    proc = ServiceProcess(f"{name}-{port}", argv, base_env(), log_dir).start()

    def answers() -> bool:
        if not proc.alive():
            raise RuntimeError(f"{name} exited:\n{proc.log_tail()}")
        return ready(base)

    try:
        wait_for(answers, timeout=60, interval=0.1, what=f"{name} on {base}")
        yield Emulator(name, endpoint or base, proc)
    except (TimeoutError, RuntimeError) as exc:
        raise RuntimeError(f"{exc}\n--- {name} log ---\n{proc.log_tail()}") from None
    finally:
        proc.kill()  # in memory, nothing to flush; Azurite would linger ~15 s after a SIGTERM


def _status_below(limit: int, path: str) -> Callable[[str], bool]:
    def check(base: str) -> bool:
        return httpx.get(base + path, timeout=2.0).status_code < limit

    return check


@contextmanager
def moto_server(log_dir: Path) -> Iterator[Emulator]:
    """moto's S3 (every AWS service, in fact) on a free port; any access key is accepted."""
    if importlib.util.find_spec("moto") is None or importlib.util.find_spec("flask") is None:
        missing("moto[server] is not installed: run `make deps`")
    port = free_port()
    argv = [PYTHON, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)]
    with _running("moto", argv, port, log_dir, _status_below(300, "/moto-api/data.json")) as emulator:
        yield emulator


def moto_require_auth(endpoint: str, on: bool) -> None:
    """Make moto check signatures against its IAM (``on``), or accept any key again (its default)."""
    count = b"0" if on else b"inf"
    httpx.post(f"{endpoint}/moto-api/reset-auth", content=count, timeout=5).raise_for_status()


@contextmanager
def azurite(log_dir: Path) -> Iterator[Emulator]:
    """Azurite's blob service in memory; the endpoint is the dev account's URL (path style)."""
    if not os.access(AZURITE_BLOB, os.X_OK):
        missing("Azurite is not installed: run `bash scripts/ensure-deps.sh node` (needs npm)")
    port = free_port()
    argv = [
        str(AZURITE_BLOB),
        "--blobHost", "127.0.0.1", "--blobPort", str(port),
        "--inMemoryPersistence", "--skipApiVersionCheck", "--loose", "--silent",
    ]  # fmt: skip
    endpoint = f"http://127.0.0.1:{port}/{AZURITE_ACCOUNT}"
    with _running(
        "azurite", argv, port, log_dir, _status_below(500, f"/{AZURITE_ACCOUNT}?comp=list"), endpoint
    ) as em:
        yield em


@contextmanager
def gcs_emulator(log_dir: Path) -> Iterator[Emulator]:
    """``gcp-storage-emulator`` in memory; clients reach it through ``STORAGE_EMULATOR_HOST``."""
    binary = Path(PYTHON).parent / "gcp-storage-emulator"
    if importlib.util.find_spec("gcp_storage_emulator") is None or not binary.exists():
        missing("gcp-storage-emulator is not installed: run `make deps`")
    port = free_port()
    argv = [str(binary), "start", "--host", "127.0.0.1", "--port", str(port), "--in-memory"]
    with _running("gcs-emulator", argv, port, log_dir, _status_below(300, "/storage/v1/b")) as emulator:
        yield emulator
