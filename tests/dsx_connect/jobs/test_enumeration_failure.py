"""A connector whose enumeration fails tells the core, which fails the job with the reason (SPEC §5, §6).

The connector framework runs in the test (a memory connector whose listing breaks part-way) against
a real core: the items submitted before the failure are kept and counted, the job says why it failed.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import AsyncIterator, Callable
from typing import Any

import anyio
import httpx
import pytest

from shared.connector import Item
from shared.connector.runtime import ConnectorRuntime
from tests.dsx_connect.conftest import Core
from tests.shared.connector.memory_connector import MemoryConnector, MemorySettings

pytestmark = [pytest.mark.integration, pytest.mark.anyio]


class BrokenListing(MemoryConnector):
    """Lists ``fail_after`` items, then the storage goes away."""

    fail_after = 150

    async def enumerate(self) -> AsyncIterator[Item]:
        count = 0
        async for item in super().enumerate():
            if count == self.fail_after:
                raise PermissionError("listing the asset: access denied")
            count += 1
            yield item


async def until(predicate: Callable[[], Any], timeout: float = 15.0, what: str = "condition") -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if value := predicate():
            return value
        await anyio.sleep(0.05)
    raise TimeoutError(f"timed out waiting for {what}")


async def test_a_failed_enumeration_is_reported_and_fails_the_job_with_its_reason(jobs_core: Core) -> None:
    settings = MemorySettings(
        dsx_connect_url=jobs_core.url, scan_batch_size=50, heartbeat_interval_s=60, auth={"enabled": False}
    )
    connector = BrokenListing(settings, items={f"f{i:03d}.bin": b"x" * (i + 1) for i in range(400)})
    runtime = ConnectorRuntime(connector)
    await runtime.start()
    job_id = uuid.uuid4().hex
    try:
        await until(lambda: runtime.registered, what="registration")
        progress, started = runtime.start_full_scan(job_id, None)
        assert started
        await until(lambda: progress.state == "failed", what="the scan to fail")
        with httpx.Client(base_url=jobs_core.api, timeout=10) as api:

            def failed_job() -> dict[str, Any] | None:
                job = api.get(f"/scan/jobs/{job_id}").json()
                return job if job.get("status") == "failed" else None

            job = await until(failed_job, what="the job to be failed by the core")
    finally:
        await runtime.stop()

    assert progress.submitted == 150
    assert (job["enqueued"], job["enqueued_total"], job["enqueue_done"]) == (150, 150, True)
    assert job["failure_reason"] == "enumeration failed: permission denied"  # as the framework classifies it
