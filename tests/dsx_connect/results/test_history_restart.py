"""The whole local stack with the SQL history (SQLite): every result of a scan is searchable, more
than Redis keeps, and still is after the core and every worker are killed and started again."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

from devstack.samples import sample_files, write_sample
from tests.support.local_stack import CORE_AND_WORKERS, StackRun, write_files

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(300)]

BENIGN = 60
CACHE = 10  # results Redis keeps beside the history


@pytest.fixture
def history_stack(tmp_path: Path) -> Iterator[StackRun]:
    run = StackRun(
        tmp_path / "run",
        env={
            "DSXCONNECT_RESULTS_DB": f"sqlite:///{tmp_path / 'history' / 'results.db'}",
            "DSXCONNECT_RESULTS_DB__CACHE_SIZE": str(CACHE),
        },
        connector_env={"DSXCONNECTOR_MONITOR": "false"},
    )
    write_files(run.cfg.sample_dir, BENIGN)
    write_sample(run.cfg.sample_dir / "sample")
    try:
        yield run.start()
    finally:
        run.stop()


def test_every_result_is_searchable_beyond_redis_and_after_a_restart(history_stack: StackRun) -> None:
    run = history_stack
    expected = sum(1 for p in run.cfg.sample_dir.rglob("*") if p.is_file())
    malicious = sum(1 for item in sample_files() if item.verdict == "Malicious")
    job_id = run.start_full_scan()
    run.wait_job(job_id, lambda j: j["status"] == "completed", timeout=180, what="the scan to complete")
    # the history is written before Redis counts a result: a completed job has all of them there
    assert run.get("/scan/results", job=job_id, limit=1)["total"] == expected
    broker = redis.Redis.from_url(run.cfg.redis_url, decode_responses=True)  # with the run's password
    assert broker.zcard("dsxc:results:idx") == CACHE  # Redis keeps a few; the history has them all
    broker.close()

    run.kill(CORE_AND_WORKERS)
    run.restart(CORE_AND_WORKERS)

    page = run.get("/scan/results", job=job_id, limit=1000)
    assert page["backend"] == "sqlite" and page["total"] == expected
    assert len({item["scan_request_id"] for item in page["items"]}) == expected
    found = run.get("/scan/results", verdict="Malicious", job=job_id)["items"]
    assert len(found) == malicious and all(item["action"]["applied"] for item in found)
    sha = found[0]["file_info"]["sha256"]
    assert [i["scan_request_id"] for i in run.get("/scan/results", sha256=sha)["items"]] == [
        found[0]["scan_request_id"]
    ]
    oldest = page["items"][-1]["scan_request_id"]
    assert run.get(f"/scan/results/{oldest}")["scan_request_id"] == oldest  # long gone from Redis
    export = run.api.get("/scan/results/export", params={"job": job_id, "format": "jsonl"})
    assert len(export.text.splitlines()) == expected
    report = run.get(f"/scan/reports/jobs/{job_id}")
    assert report["results"] == expected and len(report["malicious"]) == malicious
