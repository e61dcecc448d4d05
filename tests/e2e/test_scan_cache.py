"""Incremental rescans on the real stack (Redis, dsxa_lite, core, Celery workers, filesystem
connector): a second full scan of unchanged files reads none of them, a changed file is scanned,
``force=true`` and a rules reload scan everything again, and a cached Malicious verdict is acted on
again. Once with the results (and the index) in SQLite and the API in two processes (as the
benchmark runs it: both serve unchanged items and write the same SQLite file), once in Redis."""

from __future__ import annotations

import os
import shutil
import sqlite3
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import redis

from dsx_connect.workers.context import CONNECTOR_CACHE_S
from tests.support.local_stack import StackRun, write_files
from tests.support.procs import REPO_ROOT, wait_for

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(300)]

BENIGN = 60
IDENTITY_TTL_S = 0.5
EICAR = b"X5O!P%@AP[4\\PZX54(P^)7CC)7}$EICAR-STANDARD-ANTIVIRUS-TEST-FILE!$H+H*"
MARKER = b"DSXA-LITE-TEST-MALWARE-MARKER"  # the shipped YARA rules' test marker


@pytest.fixture(scope="module", params=["sqlite", "redis"])
def run(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[StackRun]:
    """The stack with its results (and so the index) in SQLite behind two API processes, then in
    Redis behind one."""
    rules = tmp_path_factory.mktemp("rules")
    shutil.copy(REPO_ROOT / "dsxa_lite" / "rules" / "default.yar", rules / "default.yar")
    saved = os.environ.get("DSXA_LITE_RULES_DIR")
    os.environ["DSXA_LITE_RULES_DIR"] = str(rules)  # the stack's processes inherit it (devstack.procs)
    stack = StackRun(
        tmp_path_factory.mktemp("cache-stack"),
        env={"DSXCONNECT_SCAN_CACHE__IDENTITY_TTL_S": str(IDENTITY_TTL_S)}
        | ({"DSXCONNECT_RESULTS_DB": "redis"} if request.param == "redis" else {}),
        connector_env={"DSXCONNECTOR_ITEM_ACTION": "nothing", "DSXCONNECTOR_MONITOR": "false"}
        # batches of 8, two in flight: both API processes take a share of every scan
        | ({"DSXCONNECTOR_SCAN_BATCH_SIZE": "8"} if request.param == "sqlite" else {}),
        core_workers=2 if request.param == "sqlite" else 1,
    )
    sample = stack.cfg.sample_dir
    write_files(sample, BENIGN)
    (sample / "swap.txt").write_bytes(b"b" * len(EICAR))  # same size as EICAR: swapped in below
    (sample / "changed.txt").write_bytes(b"first version\n")
    (sample / "bad.txt").write_bytes(b"some text " + MARKER + b"\n")
    try:
        yield stack.start()
    finally:
        stack.stop()
        if saved is None:
            os.environ.pop("DSXA_LITE_RULES_DIR", None)
        else:
            os.environ["DSXA_LITE_RULES_DIR"] = saved


TOTAL = BENIGN + 3


def full_scan(run: StackRun, force: bool = False) -> tuple[dict[str, Any], dict[str, dict[str, Any]]]:
    """Run a full scan to completion: its job and its results by location."""
    params = {"force": "true"} if force else {}
    response = run.api.post(f"/connectors/full_scan/{run.connector()['uuid']}", params=params)
    assert response.status_code == 202, response.text
    job_id = response.json()["job_id"]
    job = run.wait_job(job_id, lambda j: j["status"] == "completed", what="the full scan to complete")
    items = run.get("/scan/results", job=job_id, limit=500)["items"]
    assert len(items) == job["processed"] == job["enqueued_total"]
    return job, {item["location"]: item for item in items}


def index_size(run: StackRun, uuid: str) -> int:
    """Entries of the connector's index, wherever this stack keeps it (SQL history, else Redis)."""
    history = run.cfg.run_dir / "results.db"
    if history.exists():
        with sqlite3.connect(history) as db:
            return int(
                db.execute("SELECT count(*) FROM scan_cache WHERE connector_uuid = ?", (uuid,)).fetchone()[0]
            )
    client = redis.Redis.from_url(run.cfg.redis_url)
    try:
        return int(client.hlen(f"dsxc:cache:idx:{uuid}"))
    finally:
        client.close()


def cached(results: dict[str, dict[str, Any]]) -> set[str]:
    return {loc for loc, item in results.items() if item["scanner"]["cached"]}


def test_rescans_skip_unchanged_files_and_rescan_what_changed(run: StackRun) -> None:
    sample, quarantine = run.cfg.sample_dir, run.cfg.quarantine_dir
    if run.cfg.core_workers > 1:
        started = (run.cfg.log_dir / "core.log").read_text(errors="replace").count("Started server process")
        assert started == run.cfg.core_workers
    first, results = full_scan(run)
    assert first["cached"] == 0 and len(results) == TOTAL and cached(results) == set()
    assert results["bad.txt"]["verdict"] == "Malicious" and results["bad.txt"]["action"]["applied"] is False
    assert index_size(run, run.connector()["uuid"]) == TOTAL

    # Same inode, size and mtime, other bytes: only a read would see the EICAR content.
    swap = sample / "swap.txt"
    before = swap.stat()
    with swap.open("r+b") as handle:
        handle.write(EICAR)
    os.utime(swap, ns=(before.st_atime_ns, before.st_mtime_ns))
    (sample / "changed.txt").write_bytes(b"second, longer version\n")
    # Malicious files are now moved: a cached Malicious verdict must be acted on again.
    uuid = run.connector()["uuid"]
    assert run.api.put(f"/connectors/config/{uuid}", json={"item_action": "move"}).status_code == 200
    wait_for(lambda: run.connector()["item_action"] == "move", timeout=30, what="the connector's new action")
    time.sleep(CONNECTOR_CACHE_S)  # workers keep a connector's registration this long

    second, results = full_scan(run)
    assert second["cached"] == TOTAL - 1 and cached(results) == set(results) - {"changed.txt"}
    assert results["swap.txt"]["verdict"] == "Benign"  # served from the index: its bytes were never read
    assert (
        results["changed.txt"]["verdict"] == "Benign" and results["changed.txt"]["scanner"]["duration_us"] > 0
    )
    bad = results["bad.txt"]
    assert bad["verdict"] == "Malicious" and bad["scanner"]["cached"] is True
    assert bad["action"]["applied"] is True and bad["action"]["requested"] == "move"
    assert not (sample / "bad.txt").exists() and any(quarantine.rglob("bad.txt"))
    assert second["bytes_scanned"] == len(b"second, longer version\n")

    forced, results = full_scan(run, force=True)  # bad.txt is in the quarantine now
    assert forced["cached"] == 0 and forced["force"] is True and len(results) == TOTAL - 1
    assert results["swap.txt"]["verdict"] == "Malicious"  # read and scanned: the EICAR bytes found
    assert cached(results) == set()


def test_a_rules_reload_makes_every_verdict_stale(run: StackRun) -> None:
    warm, results = full_scan(run)  # swap.txt was moved by the forced scan
    assert warm["cached"] == len(results) == TOTAL - 2
    engine = {item["scanner"]["engine_version"] for item in results.values()}
    rules = Path(os.environ["DSXA_LITE_RULES_DIR"])
    (rules / "extra.yar").write_text(
        'rule Cache_Test_Extra { meta: description = "test" threat_type = "VIRUS" '
        'strings: $a = "NEVER-IN-A-SAMPLE-FILE-3f1c" condition: $a }\n'
    )
    reloaded = httpx.post(f"{run.cfg.dsxa_url}/admin/reload", timeout=30)
    assert reloaded.status_code == 200, reloaded.text
    time.sleep(IDENTITY_TTL_S)  # the documented window: a worker trusts the identity it read this long
    after, results = full_scan(run)
    assert after["cached"] == 0 and cached(results) == set() and len(results) == TOTAL - 2
    assert {item["scanner"]["engine_version"] for item in results.values()}.isdisjoint(engine)
    again, results = full_scan(run)
    assert again["cached"] == len(results) == TOTAL - 2
