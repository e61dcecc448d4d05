"""A slow YARA rule does not freeze the event loop: only small bodies are scanned on it.

yara-x holds the GIL while it scans, so a worker thread would freeze the loop as surely as an
inline scan: a body past ``INLINE_SCAN_BYTES`` is scanned in a YARA worker process."""

from __future__ import annotations

import time
from pathlib import Path

import anyio
import pytest

from dsxa_lite.body import ReceivedBody
from dsxa_lite.service import INLINE_SCAN_BYTES, ScanService
from dsxa_lite.settings import DsxaLiteSettings

from .samples import sha256

pytestmark = pytest.mark.unit

# quadratic in the file size: a few hundred KiB keep it busy until the timeout
SLOW_RULE = """
rule Slow_Loop {
    meta: threat_type = "VIRUS"
    condition:
        for any i in (0..filesize - 1) : (
            for any j in (0..filesize - 1) : ( uint8(i) == 0xEE and uint8(j) == 0xFF )
        )
}
rule Marker { meta: threat_type = "VIRUS" strings: $a = "SLOW-RULES-MARKER" condition: $a }
"""


@pytest.fixture
def slow_service(tmp_path: Path) -> ScanService:
    rules = tmp_path / "rules"
    rules.mkdir()
    (rules / "slow.yar").write_text(SLOW_RULE)
    return ScanService(DsxaLiteSettings(rules_dir=rules, scan_timeout_s=1))


def body_of(data: bytes) -> ReceivedBody:
    return ReceivedBody(sha256(data), len(data), data[:4096], data=data)


def test_slow_rule_on_a_larger_body_leaves_the_event_loop_free(slow_service: ScanService) -> None:
    data = b"\0" * (4 * INLINE_SCAN_BYTES)
    gaps: list[float] = []

    async def main() -> str:
        done = anyio.Event()

        async def ticker() -> None:
            last = time.perf_counter()
            while not done.is_set():
                await anyio.sleep(0.01)
                now = time.perf_counter()
                gaps.append(now - last)
                last = now

        async with anyio.create_task_group() as group:
            group.start_soon(ticker)
            await anyio.sleep(0.05)
            outcome = await slow_service.ascan(body_of(data))
            done.set()
        return f"{outcome.verdict}: {outcome.reason}"

    try:
        answer = anyio.run(main)
    finally:
        slow_service.close()
    assert answer == "Not Scanned: YARA scan timed out after 1s"
    assert max(gaps) < 0.5, f"the event loop stalled {max(gaps):.2f} s"


def test_larger_bodies_get_the_same_verdicts_out_of_process(tmp_path: Path) -> None:
    rules = tmp_path / "rules"
    rules.mkdir()
    (rules / "marker.yar").write_text(SLOW_RULE.split("}\n", 1)[1])  # the marker rule only
    service = ScanService(
        DsxaLiteSettings(rules_dir=rules, yara_window_bytes=64 * 1024, yara_window_overlap_bytes=1024)
    )
    clean = b"x" * (3 * INLINE_SCAN_BYTES)
    marked = clean[:-100] + b"SLOW-RULES-MARKER" + clean[-83:]

    async def main() -> list[str]:
        verdicts = []
        for data in (clean, marked, marked[: INLINE_SCAN_BYTES - 50] + b"SLOW-RULES-MARKER"):
            outcome = await service.ascan(body_of(data))
            verdicts.append(f"{outcome.verdict} {outcome.reason}".strip())
        return verdicts

    try:
        assert anyio.run(main) == ["Benign", "Malicious yara: Marker", "Malicious yara: Marker"]
    finally:
        service.close()
