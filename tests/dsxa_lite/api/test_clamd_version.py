"""clamd's signatures change under a running scanner (freshclam): the identity follows its
``VERSION`` answer without a reload, so verdict caches stop serving verdicts of the old ones."""

from __future__ import annotations

import socket
import struct
import threading
from collections.abc import Iterator
from contextlib import suppress
from pathlib import Path

import httpx
import pytest

from dsxa_lite.settings import DsxaLiteSettings
from tests.dsxa_lite.api.in_process import run_against

from ..samples import filler

pytestmark = pytest.mark.unit


class FakeClamd:
    """A clamd on a unix socket that answers ``VERSION`` with :attr:`version` and finds nothing;
    :attr:`asked` counts the ``VERSION`` calls."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.version = "ClamAV 1.4.3/27000/Mon Jan  5 09:00:00 2026"
        self.asked = 0
        self._server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self._server.bind(str(path))
        self._server.listen()
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self._server.accept()
            except OSError:
                return  # closed
            with conn:
                self._answer(conn)

    @staticmethod
    def _read_exact(conn: socket.socket, count: int) -> bytes:
        data = b""
        while len(data) < count:
            chunk = conn.recv(count - len(data))
            if not chunk:
                raise ConnectionError("client went away")
            data += chunk
        return data

    def _answer(self, conn: socket.socket) -> None:
        command = b""
        while not command.endswith(b"\0"):
            chunk = conn.recv(1)
            if not chunk:
                return
            command += chunk
        if command == b"zVERSION\0":
            self.asked += 1
            conn.sendall(self.version.encode() + b"\0")
        elif command == b"zINSTREAM\0":
            with suppress(ConnectionError):
                while length := struct.unpack(">I", self._read_exact(conn, 4))[0]:
                    self._read_exact(conn, length)
                conn.sendall(b"stream: OK\0")

    def close(self) -> None:
        with suppress(OSError):
            self._server.shutdown(socket.SHUT_RDWR)
        self._server.close()
        self._thread.join(timeout=5)


@pytest.fixture
def clamd(tmp_path: Path) -> Iterator[FakeClamd]:
    fake = FakeClamd(tmp_path / "clamd.sock")
    try:
        yield fake
    finally:
        fake.close()


def test_identity_follows_clamds_version_without_a_reload(clamd: FakeClamd) -> None:
    settings = DsxaLiteSettings(clamd=str(clamd.path), clamd_version_interval_s=0)

    async def steps(client: httpx.AsyncClient) -> None:
        before = (await client.get("/version")).json()
        assert "27000" in before["engine_version"]
        clamd.version = "ClamAV 1.4.3/27001/Tue Jan  6 09:00:00 2026"  # freshclam updated it
        after = (await client.get("/version")).json()
        assert after["identity"] != before["identity"]
        assert after["rules_version"] != before["rules_version"]
        assert "27001" in after["engine_version"] and "27001" in after["identity"]
        assert after["last_reload"] is None  # no reload: clamd's answer alone changed it
        scanned = await client.post("/scan/binary/v2", content=filler(100))
        assert scanned.status_code == 200, scanned.text
        assert scanned.json()["engine_version"] == after["identity"]

    run_against(settings, steps)


def test_clamds_version_is_asked_at_most_once_per_interval(clamd: FakeClamd) -> None:
    settings = DsxaLiteSettings(clamd=str(clamd.path), clamd_version_interval_s=3600)

    async def steps(client: httpx.AsyncClient) -> None:
        asked = clamd.asked  # at load
        before = (await client.get("/version")).json()
        clamd.version = "ClamAV 1.4.3/27001/Tue Jan  6 09:00:00 2026"
        for _ in range(5):
            assert (await client.post("/scan/binary/v2", content=filler(100))).status_code == 200
        assert (await client.get("/version")).json()["identity"] == before["identity"]
        assert clamd.asked == asked

    run_against(settings, steps)
