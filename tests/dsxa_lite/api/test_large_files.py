"""Large bodies stream through with bounded memory (PERFORMANCE.md: a 2 GiB file scanned with
every process under 200 MB RSS). The test streams 512 MiB with the default spool threshold and
window; the 2 GiB run is a manual benchmark (same code path, four times longer)."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest

from ..samples import MARKER, MARKER_RULE
from ..servers import running_scanner

pytestmark = [pytest.mark.integration, pytest.mark.slow]

MiB = 1024 * 1024
RSS_LIMIT_BYTES = 200 * 1000 * 1000


def peak_rss_bytes(pid: int) -> int:
    """The process's peak resident set size (``VmHWM``, Linux)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024
    raise AssertionError("no VmHWM in /proc status")


@pytest.mark.skipif(not Path("/proc/self/status").exists(), reason="needs Linux /proc")
@pytest.mark.parametrize("declared", [False, True], ids=["chunked-spooled", "content-length-streamed"])
def test_512_mib_upload_is_scanned_under_200_mb_rss(tmp_path: Path, logs_dir: Path, declared: bool) -> None:
    """Chunked, the body spools; with its size declared, it is scanned as it arrives (no spool)."""
    size_mib = 512
    zeros = bytes(MiB)
    digest = hashlib.sha256()

    def body() -> Iterator[bytes]:
        for _ in range(size_mib):
            digest.update(zeros)
            yield zeros
        digest.update(MARKER)
        yield MARKER

    env = {"DSXA_LITE_SPOOL_DIR": str(tmp_path)}
    with running_scanner("dsxa-lite-large", env, logs_dir) as scanner:
        assert scanner.process.proc is not None
        headers = {"Content-Length": str(size_mib * MiB + len(MARKER))} if declared else {}
        response = httpx.post(scanner.url + "/scan/binary/v2", content=body(), headers=headers, timeout=300)
        peak = peak_rss_bytes(scanner.process.proc.pid)
    answer = response.json()
    assert answer["verdict_details"]["reason"] == f"yara: {MARKER_RULE}"  # found in the last window
    assert answer["file_info"]["file_size_in_bytes"] == size_mib * MiB + len(MARKER)
    assert answer["file_info"]["file_hash"] == digest.hexdigest()
    assert peak < RSS_LIMIT_BYTES, f"peak RSS {peak / MiB:.0f} MiB"
    assert list(tmp_path.iterdir()) == []


@pytest.mark.skipif(not Path("/proc/self/status").exists(), reason="needs Linux /proc")
def test_two_streamed_uploads_at_once_stay_under_200_mb_rss(tmp_path: Path, logs_dir: Path) -> None:
    """Streamed bodies hold a window each (LARGE_SCAN_CONCURRENCY of them at once, default 2):
    memory follows the window, not the file, so 256 MiB each shows the steady state."""
    size_mib = 256
    zeros = bytes(MiB)

    def body() -> Iterator[bytes]:
        for _ in range(size_mib):
            yield zeros
        yield MARKER

    def upload(url: str) -> dict[str, object]:
        headers = {"Content-Length": str(size_mib * MiB + len(MARKER))}
        return httpx.post(url, content=body(), headers=headers, timeout=300).json()  # type: ignore[no-any-return]

    env = {"DSXA_LITE_SPOOL_DIR": str(tmp_path)}
    with running_scanner("dsxa-lite-two-large", env, logs_dir) as scanner:
        assert scanner.process.proc is not None
        with ThreadPoolExecutor(2) as pool:
            answers = list(pool.map(upload, [scanner.url + "/scan/binary/v2"] * 2))
        peak = peak_rss_bytes(scanner.process.proc.pid)
    assert [a["verdict_details"]["reason"] for a in answers] == [f"yara: {MARKER_RULE}"] * 2  # type: ignore[index]
    assert peak < RSS_LIMIT_BYTES, f"peak RSS {peak / MiB:.0f} MiB"
    assert list(tmp_path.iterdir()) == []
