"""A full scan survives kill -9 of the core API and of every worker in the middle of it (SPEC §6).

The real local stack runs with its own Redis (exact stats); the connector keeps running and retries
what the dead core did not answer. Nothing may be lost and nothing counted twice.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

from devstack.samples import sample_files, write_sample
from tests.support.local_stack import CORE_AND_WORKERS, StackRun, write_files
from tests.support.procs import wait_for

pytestmark = [pytest.mark.e2e, pytest.mark.slow, pytest.mark.timeout(420)]

BENIGN = 1998  # + the EICAR file and the YARA test file: 2,000 in all


# What the killed workers held comes back after the broker's visibility timeout: a short one here
# (which the settings allow only with short item deadlines). What a worker had popped from the broker
# but not yet recorded as unacknowledged is lost to Redis; the core sends such items again when their
# lease passes (jobs/recovery.py): soon, here.
REDELIVERY = {
    "DSXCONNECT_WORKERS__VISIBILITY_TIMEOUT_S": "25",
    "DSXCONNECT_WORKERS__ITEM_DEADLINE_S": "5",
    "DSXCONNECT_WORKERS__CONNECTOR_TIMEOUT_S": "5",
    "DSXCONNECT_JOBS__REDISPATCH_AFTER_S": "25",
    "DSXCONNECT_WORKERS__RETRY_BACKOFF_MAX_S": "2",
    "DSXCONNECT_WORKERS__BREAKER_OPEN_MAX_S": "2",
}


@pytest.fixture
def scan_stack(tmp_path: Path) -> Iterator[StackRun]:
    run = StackRun(
        tmp_path / "run",
        env=REDELIVERY,
        connector_env={"DSXCONNECTOR_MONITOR": "false", "DSXCONNECTOR_SCAN_BATCH_SIZE": "50"},
    )
    write_files(run.cfg.sample_dir, BENIGN)
    write_sample(run.cfg.sample_dir / "sample")  # 10 benign + 2 malicious; keep only the malicious
    for item in sample_files():
        if item.verdict == "Benign":
            (run.cfg.sample_dir / "sample" / item.path).unlink()
    try:
        yield run.start()
    finally:
        run.stop()


def test_a_job_finishes_with_exact_counts_after_kill_9_of_the_core_and_every_worker(
    scan_stack: StackRun,
) -> None:
    run = scan_stack
    files = [p for p in run.cfg.sample_dir.rglob("*") if p.is_file()]
    assert len(files) == 2000
    job_id = run.start_full_scan()
    run.wait_job(job_id, lambda j: j["processed"] >= 200, timeout=120, what="the scan to be under way")

    run.kill(CORE_AND_WORKERS)
    broker = redis.Redis.from_url(run.cfg.redis_url, decode_responses=True)  # with the run's password
    at_kill = broker.hgetall(f"dsxc:job:{job_id}")
    assert int(at_kill.get("processed", 0)) < 2000, f"the job finished before the kill: {at_kill}"
    run.restart(CORE_AND_WORKERS)

    job = run.wait_job(job_id, lambda j: j["status"] != "running", timeout=240, what="the job to finish")
    assert job["status"] == "completed", job
    assert job["processed"] == job["enqueued_total"] == 2000
    assert job["verdicts"] == {"Benign": BENIGN, "Malicious": 2}
    assert (job["errors"], job["skipped"], job["not_yet_scanned"]) == (0, 0, 0)
    stats = run.get("/scan/stats")
    assert stats["total"] == 2000, stats
    assert stats["verdicts"]["Benign"] == BENIGN and stats["verdicts"]["Malicious"] == 2
    assert stats["actions"] == {"move": 2}
    assert run.get("/scan/results", job=job_id, limit=1)["total"] == 2000
    wait_for(lambda: len([p for p in run.cfg.quarantine_dir.rglob("*") if p.is_file()]) == 2, timeout=10)
    broker.close()
