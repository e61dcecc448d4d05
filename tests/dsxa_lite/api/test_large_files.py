"""Large bodies stream through with bounded memory (PERFORMANCE.md: a 2 GiB file scanned with
every process under 200 MB RSS). The test streams 512 MiB with the default spool threshold and
window; the 2 GiB run is a manual benchmark (same code path, four times longer)."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
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
def test_512_mib_upload_is_scanned_under_200_mb_rss(tmp_path: Path, logs_dir: Path) -> None:
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
        response = httpx.post(scanner.url + "/scan/binary/v2", content=body(), timeout=300)
        peak = peak_rss_bytes(scanner.process.proc.pid)
    answer = response.json()
    assert answer["verdict_details"]["reason"] == f"yara: {MARKER_RULE}"  # found in the last window
    assert answer["file_info"]["file_size_in_bytes"] == size_mib * MiB + len(MARKER)
    assert answer["file_info"]["file_hash"] == digest.hexdigest()
    assert peak < RSS_LIMIT_BYTES, f"peak RSS {peak / MiB:.0f} MiB"
    assert list(tmp_path.iterdir()) == []
