"""The real connector process against a real (fake) core over HTTP: register, scan, watch, stream."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.connectors.filesystem.conftest import connector_process
from tests.shared.connector.core_receiver import FakeCore, running_core
from tests.support.auth import core_signer
from tests.support.procs import restartable_port, wait_for

pytestmark = pytest.mark.integration

SIGNED = core_signer()  # the connector process holds the test pair: calls are signed as the core signs them


def start_scan(url: str, **params: Any) -> str:
    response = httpx.post(f"{url}/full_scan", params=params, timeout=10, auth=SIGNED)
    assert response.status_code == 202
    assert response.json()["status"] == "success"
    assert response.headers["x-job-id"] == response.json()["job_id"]
    return response.json()["job_id"]


def test_registers_heartbeats_and_unregisters(fake_core: FakeCore, asset: Path, logs_dir: Path) -> None:
    with connector_process(asset, fake_core.url, logs_dir) as url:
        wait_for(lambda: len(fake_core.registrations) >= 3, timeout=20, what="heartbeats")
        me = httpx.get(f"{url}/", timeout=5, auth=SIGNED).json()  # uuid and asset: to the core only
        assert httpx.get(f"{url}/readyz", timeout=5).status_code == 200
        assert httpx.get(f"{url.rsplit('/', 1)[0]}/readyz", timeout=5).status_code == 200
    codes = fake_core.registration_codes()
    assert codes[0] == 201 and set(codes[1:]) == {200}
    registered = fake_core.registrations[0][1]
    assert registered["url"] == url and registered["name"] == "filesystem-connector"
    assert registered["uuid"] == me["uuid"] and registered["status"] == "ready"
    assert registered["asset"] == str(asset.resolve()) and registered["version"] == "0.1.0"
    assert fake_core.unregistered == [me["uuid"]]


def test_starts_while_the_core_is_down_and_registers_when_it_comes_up(asset: Path, logs_dir: Path) -> None:
    port = restartable_port()  # tried while nothing listens, then served
    with connector_process(asset, f"http://127.0.0.1:{port}", logs_dir) as url:
        ready = httpx.get(f"{url}/readyz", timeout=5)
        assert ready.status_code == 503 and ready.json()["failing"] == ["dsx-connect"]
        with running_core(port=port) as core:
            wait_for(lambda: core.registration_codes()[:1] == [201], timeout=20, what="late registration")
            wait_for(lambda: httpx.get(f"{url}/readyz", timeout=5).status_code == 200, timeout=10)


def test_full_scan_submits_exactly_the_filtered_files(
    fake_core: FakeCore, asset: Path, logs_dir: Path
) -> None:
    for n in range(30):
        (asset / f"bulk/f{n:02d}.pdf").parent.mkdir(exist_ok=True)
        (asset / f"bulk/f{n:02d}.pdf").write_bytes(b"x" * n)
    expected = sorted(
        ["docs/report.pdf", "docs/deep/er/file.pdf"] + [f"bulk/f{n:02d}.pdf" for n in range(30)]
    )
    with connector_process(asset, fake_core.url, logs_dir, DSXCONNECTOR_FILTER="*.pdf") as url:
        job_id = start_scan(url, job_id="job-fs-1")
        wait_for(lambda: job_id in fake_core.enqueue_done, timeout=30, what="enqueue_done")
        estimate = httpx.get(f"{url}/estimate", timeout=10, auth=SIGNED).json()
    assert job_id == "job-fs-1"
    assert fake_core.locations(job_id) == expected
    assert fake_core.enqueue_done[job_id] == len(expected) == estimate["count"]
    assert all(len(batch) <= 10 for batch in fake_core.batches)  # the core's default batch size
    sizes = {r["location"]: r["size_in_bytes"] for r in fake_core.requests}
    assert sizes["bulk/f07.pdf"] == 7
    assert all(r["connector"]["uuid"] == fake_core.registrations[0][1]["uuid"] for r in fake_core.requests)


def test_full_scan_pause_and_cancel(fake_core: FakeCore, asset: Path, logs_dir: Path) -> None:
    for n in range(60):
        (asset / f"bulk/f{n:02d}.bin").parent.mkdir(exist_ok=True)
        (asset / f"bulk/f{n:02d}.bin").write_bytes(b"x")
    fake_core.flags["paused-job"] = {"paused": "1"}
    # one batch in flight: the second waits for the first's answer, so the flag read after it sees
    # the cancel the first batch set (with two, both reads could come before the core had it)
    with connector_process(
        asset, fake_core.url, logs_dir, DSXCONNECTOR_FULL_SCAN_BATCHES_IN_FLIGHT="1"
    ) as url:
        start_scan(url, job_id="paused-job")
        wait_for(lambda: fake_core.flag_reads.get("paused-job", 0) >= 3, timeout=20, what="pause polling")
        assert not fake_core.requests
        fake_core.flags["paused-job"] = {}
        wait_for(lambda: "paused-job" in fake_core.enqueue_done, timeout=30)
        assert fake_core.enqueue_done["paused-job"] == 65

        def cancel(batch: list[dict[str, Any]]) -> None:
            if batch[0]["scan_job_id"] == "cancelled-job":
                fake_core.flags["cancelled-job"] = {"cancel": "1"}

        fake_core.on_batch = cancel
        start_scan(url, job_id="cancelled-job")
        wait_for(lambda: "cancelled-job" in fake_core.enqueue_done, timeout=30)
    submitted = fake_core.locations("cancelled-job")
    # the read after the first batch may come before the core has it; the read after the second cannot
    assert fake_core.enqueue_done["cancelled-job"] == len(submitted) in (10, 20)


def test_full_scan_limit_and_generated_job_id(fake_core: FakeCore, asset: Path, logs_dir: Path) -> None:
    with connector_process(asset, fake_core.url, logs_dir) as url:
        job_id = start_scan(url, limit=2)
        wait_for(lambda: job_id in fake_core.enqueue_done, timeout=30)
    assert len(job_id) == 36 and fake_core.enqueue_done[job_id] == 2 == len(fake_core.locations(job_id))


def test_a_file_dropped_after_start_is_submitted_by_the_watcher(
    fake_core: FakeCore, asset: Path, logs_dir: Path
) -> None:
    with connector_process(asset, fake_core.url, logs_dir, DSXCONNECTOR_MONITOR="true") as url:
        assert httpx.get(f"{url}/", timeout=5).json()["monitor"] == {"enabled": True, "running": True}

        def probe_seen() -> bool:  # awatch has no "ready" hook: touch a probe until it is reported
            if any(loc.startswith("probe") for loc in fake_core.locations()):
                return True
            (asset / f"probe-{len(os.listdir(asset))}.bin").write_bytes(b"p")
            return False

        wait_for(probe_seen, timeout=20, interval=0.2, what="the watcher to report a probe")
        (asset / "dsxconnect-quarantine/moved.exe").write_bytes(b"ignored")
        # written beside the asset, then renamed in: created and written in place, the file could be
        # reported (and measured) between the two when the writer is descheduled past the debounce
        part = asset.parent / "dropped.pdf.part"
        part.write_bytes(b"%PDF dropped")
        os.replace(part, asset / "docs/dropped.pdf")
        wait_for(lambda: "docs/dropped.pdf" in fake_core.locations(), timeout=20, what="the dropped file")
    dropped = next(r for r in fake_core.requests if r["location"] == "docs/dropped.pdf")
    assert dropped["scan_job_id"] is None and dropped["size_in_bytes"] == 12
    assert "dsxconnect-quarantine/moved.exe" not in fake_core.locations()


def test_read_file_streams_a_large_file_over_http(fake_core: FakeCore, asset: Path, logs_dir: Path) -> None:
    payload = os.urandom(8 * 1024 * 1024 + 3)
    (asset / "big.iso").write_bytes(payload)
    with connector_process(asset, fake_core.url, logs_dir) as url:
        digest, chunks = hashlib.sha256(), 0
        request = {"location": "big.iso", "metainfo": "big.iso"}
        with httpx.stream("POST", f"{url}/read_file", json=request, timeout=30, auth=SIGNED) as response:
            assert response.status_code == 200
            assert response.headers["content-type"] == "application/octet-stream"
            for chunk in response.iter_raw():
                digest.update(chunk)
                chunks += 1
        assert digest.digest() == hashlib.sha256(payload).digest() and chunks > 1
        traversal = httpx.post(
            f"{url}/read_file", json={"location": "../../etc/passwd", "metainfo": "x"}, timeout=5, auth=SIGNED
        )
        assert traversal.status_code == 403 and traversal.json()["status"] == "error"
