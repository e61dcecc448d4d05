"""A real clamd (Debian's ``clamav-daemon``) for tests, with a signature database the test
writes itself: no official signatures are downloaded.

``running_clamd`` writes a config file and an ``.hdb`` database (MD5:size:name lines) into a
temp folder, starts ``clamd`` in the foreground on a unix socket and a TCP port, waits until it
answers ``VERSION`` and always stops it.
"""

from __future__ import annotations

import hashlib
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from dsxa_lite.engines.clamav import ClamavEngine, ClamdError
from tests.support.emulators import missing
from tests.support.procs import ServiceProcess, free_port, wait_for

from .samples import eicar

# a file no one has: its hash is the signature (name chosen to map to RANSOMWARE)
GENERATED = b"dsxa_lite clamd fixture: a generated file the test database knows\n" * 3
GENERATED_SIGNATURE = "DsxaLite.Ransom.Generated"


@dataclass
class Clamd:
    """A running clamd: its unix socket, its TCP address and the process."""

    socket: Path
    tcp: str
    process: ServiceProcess


def clamd_binary() -> str:
    """Path of ``clamd``; the test is skipped (saying how to install it) when it is missing."""
    found = shutil.which("clamd") or (Path("/usr/sbin/clamd").exists() and "/usr/sbin/clamd")
    if not found:
        missing("clamd not installed (apt-get install clamav-daemon; scripts/deps/apt-packages.txt)")
    return str(found)


def _hdb_line(data: bytes, name: str) -> str:
    return f"{hashlib.md5(data).hexdigest()}:{len(data)}:{name}\n"


@contextmanager
def running_clamd(folder: Path, log_dir: Path) -> Iterator[Clamd]:
    """Start clamd with its own config and database in ``folder``; always stop it."""
    binary = clamd_binary()
    (folder / "db").mkdir(parents=True)
    (folder / "tmp").mkdir()
    (folder / "db" / "dsxa-test.hdb").write_text(
        _hdb_line(eicar(), "Eicar-Test-Signature") + _hdb_line(GENERATED, GENERATED_SIGNATURE)
    )
    port = free_port()
    sock = folder / "clamd.sock"
    config = folder / "clamd.conf"
    config.write_text(
        "\n".join(
            [
                "Foreground yes",
                f"DatabaseDirectory {folder / 'db'}",
                f"LocalSocket {sock}",
                "TCPAddr 127.0.0.1",
                f"TCPSocket {port}",
                f"TemporaryDirectory {folder / 'tmp'}",
                "StreamMaxLength 16M",
                "Bytecode no",
                "",
            ]
        )
    )
    process = ServiceProcess(
        f"clamd-{port}", [binary, "-c", str(config)], {"PATH": "/usr/sbin:/usr/bin"}, log_dir
    )
    process.start()
    try:

        def answers() -> bool:
            if not process.alive():
                raise RuntimeError(f"clamd exited:\n{process.log_tail()}")
            try:
                return ClamavEngine(str(sock), timeout_s=2).version().startswith("ClamAV")
            except ClamdError:
                return False

        wait_for(answers, timeout=60, what="clamd to answer VERSION")
        yield Clamd(sock, f"127.0.0.1:{port}", process)
    finally:
        process.stop()
