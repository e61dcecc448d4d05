"""DSXA's scan by path against a real scanner: start, poll, verdict; refusals as 4xx."""

from __future__ import annotations

import os
import stat
import time
import types
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import suppress
from pathlib import Path
from typing import Any, cast

import httpx
import pytest

from tests.support.procs import wait_for

from .. import archive_samples as build
from ..dsxa_schema import check_answer
from ..samples import MARKER, eicar, filler, sha256
from ..servers import Scanner, running_scanner

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("scan-root").resolve()


@pytest.fixture(scope="module")
def path_scanner(root: Path, logs_dir: Path) -> Iterator[Scanner]:
    with running_scanner("dsxa-lite-by-path", {"DSXA_LITE_SCAN_ROOTS": str(root)}, logs_dir) as running:
        yield running


def start(scanner: Scanner, path: Path | str, **headers: str) -> httpx.Response:
    return httpx.get(scanner.url + "/scan/by_path", headers={"Stream-Path": str(path), **headers})


def result(scanner: Scanner, guid: str) -> dict[str, Any]:
    response = httpx.post(scanner.url + "/result/by_path", json={"scan_guid": guid})
    assert response.status_code == 200, response.text
    answer: dict[str, Any] = response.json()
    return answer


def finished(scanner: Scanner, guid: str) -> dict[str, Any]:
    def ready() -> dict[str, Any] | None:
        answer = result(scanner, guid)
        return answer if answer["verdict"] != "Scanning" else None

    answer = cast(dict[str, Any], wait_for(ready, timeout=20, what="the scan by path to finish"))
    check_answer(answer)
    return answer


def test_scan_by_path_answers_scanning_then_the_verdict(path_scanner: Scanner, root: Path) -> None:
    target = root / "bad.zip"
    target.write_bytes(build.zip_of({"eicar.com": eicar()}))
    started = start(path_scanner, target, **{"X-Custom-Metadata": "job-7"})
    assert started.status_code == 200, started.text
    first = started.json()
    assert first["verdict"] == "Scanning" and len(first["scan_guid"]) == 32
    answer = finished(path_scanner, first["scan_guid"])
    assert answer["scan_guid"] == first["scan_guid"]
    assert answer["verdict"] == "Malicious"
    assert answer["verdict_details"]["reason"] == "eicar: EICAR-Test-File (in eicar.com)"
    assert answer["file_info"]["file_hash"] == sha256(target.read_bytes())
    assert answer["X-Custom-Metadata"] == "job-7"


def test_scan_password_reaches_a_scan_by_path(path_scanner: Scanner, root: Path) -> None:
    target = root / "locked.zip"
    target.write_bytes(build.aes_zip({"eicar.com": eicar()}, "pw"))
    guid = start(path_scanner, target, scan_password="pw").json()["scan_guid"]
    assert finished(path_scanner, guid)["verdict"] == "Malicious"


def test_benign_file_by_path(path_scanner: Scanner, root: Path) -> None:
    target = root / "clean.txt"
    target.write_bytes(filler(5000))
    guid = start(path_scanner, target).json()["scan_guid"]
    assert finished(path_scanner, guid)["verdict"] == "Benign"


def test_paths_outside_the_roots_links_and_traversal_are_403(
    path_scanner: Scanner, root: Path, tmp_path: Path
) -> None:
    outside = tmp_path / "secret.txt"
    outside.write_text("secret")
    (root / "link.txt").symlink_to(outside)
    for path in (outside, root / "link.txt", f"{root}/../{tmp_path.name}/secret.txt", "relative.txt"):
        response = start(path_scanner, path)
        assert response.status_code == 403, path
        assert response.json()["verdict"] == "Not Scanned"


def test_missing_file_is_404_and_unknown_guid_is_404(path_scanner: Scanner, root: Path) -> None:
    assert start(path_scanner, root / "absent.txt").status_code == 404
    response = httpx.post(path_scanner.url + "/result/by_path", json={"scan_guid": "0" * 32})
    assert response.status_code == 404


def test_scan_by_path_is_off_without_roots(scanner: Scanner, root: Path) -> None:
    response = start(scanner, root / "clean.txt")
    assert response.status_code == 403
    assert "DSXA_LITE_SCAN_ROOTS" in response.json()["verdict_details"]["reason"]


@pytest.mark.unit
def test_too_many_scans_in_flight_is_a_429(root: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import anyio

    from dsxa_lite.api import by_path
    from dsxa_lite.app import create_app
    from dsxa_lite.settings import DsxaLiteSettings

    monkeypatch.setattr(by_path, "_tasks", set(range(by_path.MAX_IN_FLIGHT)))
    (root / "queued.txt").write_text("x")

    async def call() -> httpx.Response:
        app = create_app(DsxaLiteSettings(scan_roots=[root]))
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://s") as client:
            return await client.get("/scan/by_path", headers={"Stream-Path": str(root / "queued.txt")})

    response = anyio.run(call)
    assert response.status_code == 429
    assert "in flight" in response.json()["verdict_details"]["reason"]


def test_fifo_under_a_root_is_refused_promptly_and_the_scanner_stays_up(
    path_scanner: Scanner, root: Path
) -> None:
    fifo = root / "pipe"
    os.mkfifo(fifo)
    pool = ThreadPoolExecutor(max_workers=1)
    try:
        started = time.perf_counter()
        pending = pool.submit(start, path_scanner, fifo)
        time.sleep(0.2)  # the scan by path is in (or past) its open() by now
        health = httpx.get(path_scanner.url + "/healthz", timeout=5)
        assert health.status_code == 200
        response = pending.result(timeout=5)
        assert response.status_code == 403, response.text
        assert "not a regular file" in response.json()["verdict_details"]["reason"]
        assert time.perf_counter() - started < 5
    finally:
        with suppress(OSError):  # a server stuck in open(): a writer releases it
            os.close(os.open(fifo, os.O_WRONLY | os.O_NONBLOCK))
        pool.shutdown()
        fifo.unlink()


def test_result_by_path_refuses_a_large_body(path_scanner: Scanner) -> None:
    # the guid is read from a small body: a large one is refused, not read into memory
    response = httpx.post(path_scanner.url + "/result/by_path", content=b"0" * 32 + b" " * 100_000)
    assert response.status_code == 413, response.text
    assert response.json()["verdict"] == "Not Scanned"

    def chunked() -> Iterator[bytes]:
        yield b'{"scan_guid": "'
        for _ in range(64):
            yield b"x" * 65536

    response = httpx.post(path_scanner.url + "/result/by_path", content=chunked())
    assert response.status_code == 413, response.text


class _CountingOs(types.ModuleType):
    """``os`` for ``dsxa_lite.api.by_path``: counts the bytes ``read`` gives (and gives no more
    past ``cap``: end of file, so a scan that would read everything ends), and may report a
    smaller ``st_size`` than the file has (a file that grew after it was opened)."""

    def __init__(self, cap: int, reported_size: int | None = None) -> None:
        super().__init__("os")
        self.cap = cap
        self.reported_size = reported_size
        self.bytes_read = 0

    def __getattr__(self, name: str) -> Any:
        return getattr(os, name)

    def read(self, fd: int, count: int) -> bytes:
        if self.bytes_read >= self.cap:
            return b""
        data = os.read(fd, count)
        self.bytes_read += len(data)
        return data

    def fstat(self, fd: int) -> os.stat_result:
        real = os.fstat(fd)
        if self.reported_size is None:
            return real
        fields = list(real)
        fields[stat.ST_SIZE] = self.reported_size
        return os.stat_result(fields)


def _scan_in_process(settings: Any, path: Path) -> dict[str, Any]:
    """Start a scan by path on an in-process app and answer its result once it is done."""
    import asyncio

    import anyio

    from dsxa_lite.api import by_path
    from dsxa_lite.app import create_app

    async def call() -> dict[str, Any]:
        app = create_app(settings)
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://s") as client:
            started = await client.get("/scan/by_path", headers={"Stream-Path": str(path)})
            assert started.status_code == 200, started.text
            await asyncio.gather(*by_path._tasks)  # the scan's task: done when it is
            response = await client.post("/result/by_path", json={"scan_guid": started.json()["scan_guid"]})
            assert response.status_code == 200, response.text
            answer: dict[str, Any] = response.json()
            return answer

    return anyio.run(call)


@pytest.mark.unit
def test_file_over_the_limit_is_non_compliant_without_being_read(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from dsxa_lite.api import by_path
    from dsxa_lite.settings import DsxaLiteSettings

    huge = tmp_path / "sparse.bin"
    with huge.open("wb") as sparse:
        sparse.truncate(10 * 1024**3)  # 10 GiB, no block written
    counting = _CountingOs(cap=64 * 1024 * 1024)  # reading it all would take minutes: cut there
    monkeypatch.setattr(by_path, "os", counting)
    settings = DsxaLiteSettings(scan_roots=[tmp_path.resolve()], max_file_size_bytes=1024 * 1024)
    started = time.perf_counter()
    answer = _scan_in_process(settings, huge)
    assert time.perf_counter() - started < 30
    check_answer(answer)
    assert answer["verdict"] == "Non Compliant"
    assert answer["verdict_details"]["reason"] == "File Size Too Large"
    assert str(10 * 1024**3) in answer["verdict_details"]["event_description"]
    assert answer["file_info"] is None  # not read: no hash to give
    assert counting.bytes_read == 0


@pytest.mark.unit
def test_a_file_is_read_no_further_than_its_size_when_opened(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from dsxa_lite.api import by_path
    from dsxa_lite.settings import DsxaLiteSettings

    head = filler(5000)
    growing = tmp_path / "growing.log"
    growing.write_bytes(head + MARKER)  # the marker written after the scanner's fstat
    monkeypatch.setattr(by_path, "os", _CountingOs(cap=1 << 62, reported_size=len(head)))
    answer = _scan_in_process(DsxaLiteSettings(scan_roots=[tmp_path.resolve()]), growing)
    check_answer(answer)
    assert answer["verdict"] == "Benign"
    assert answer["file_info"]["file_size_in_bytes"] == len(head)
    assert answer["file_info"]["file_hash"] == sha256(head)
