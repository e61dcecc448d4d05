"""Fault injection on the real local stack: every file gets exactly one recorded verdict, whatever fails.

Each test starts its own stack (fresh Redis) on free ports with 2,000 files, 20 of them malicious
(moved to quarantine), injects one fault in the middle of a full scan, and then checks the truth:
every file has exactly one result, every malicious file was acted on exactly once, the job's counters
equal the truth, nothing is left in flight, and what ran out of retries sits in the dead-letter
queue with its reason until requeued.

Faults go through real processes: ``kill -9`` of workers and the API, a Redis restart, and a
fault-injecting proxy (tests/support/fault_proxy.py) in front of the scanner and of the connector.
"""

from __future__ import annotations

import os
import signal
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import httpx
import pytest
import redis

from scripts import stack
from tests.dsxa_lite.samples import eicar
from tests.support.procs import free_port, wait_for

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

N_FILES = 2000
N_MALICIOUS = 20
QUEUES = ("scan_request_queue", "verdict_action_queue", "scan_result_queue", "scan_result_notification_queue")


@dataclass
class FaultStack:
    cfg: stack.StackConfig
    comps: dict[str, stack.Component]
    records: dict[str, dict[str, Any]] = field(default_factory=dict)
    order: int = 0

    @property
    def api(self) -> httpx.Client:
        return httpx.Client(base_url=self.cfg.api_url, timeout=15.0, headers=stack.api_headers(self.cfg))

    def start(self, name: str) -> None:
        comp = self.comps[name]
        record = stack.spawn(self.cfg.run_dir, comp, self.order)
        self.order += 1
        self.records[name] = record
        stack.wait_ready(comp, record, 60)

    def kill(self, name: str, sig: int = signal.SIGKILL) -> None:
        pid = self.records[name]["pid"]
        os.killpg(pid, sig)
        wait_for(lambda: stack._gone(pid), timeout=30, what=f"{name} to exit")

    def fault(self, proxy: str, **mode: Any) -> None:
        port = self.comps[proxy].port
        httpx.post(f"http://127.0.0.1:{port}/__fault", json=mode, timeout=5).raise_for_status()

    def redis(self) -> redis.Redis:
        return redis.Redis.from_url(self.cfg.redis_url, decode_responses=True)  # with the run's password

    def job(self, job_id: str) -> dict[str, Any]:
        with self.api as api:
            return api.get(f"/scan/jobs/{job_id}").json()

    def start_full_scan(self) -> str:
        def registered() -> dict[str, Any] | None:
            with self.api as api:
                return next(iter(api.get("/connectors/list").json()), None)

        connector = wait_for(registered, timeout=60, what="the connector to register")
        return stack.start_full_scan(self.cfg, connector)  # type: ignore[arg-type]

    def wait_processed(self, job_id: str, at_least: int) -> None:
        wait_for(
            lambda: self.job(job_id)["processed"] >= at_least,
            timeout=120,
            interval=0.02,
            what=f"{at_least} processed",
        )

    def wait_settled(self, job_id: str, timeout: float = 180) -> dict[str, Any]:
        def settled() -> dict[str, Any] | None:
            job = self.job(job_id)
            return job if job["status"] == "completed" and self.in_flight() == 0 else None

        return wait_for(settled, timeout=timeout, interval=0.2, what=f"job {job_id} to settle")  # type: ignore[return-value]

    def in_flight(self) -> int:
        client = self.redis()
        waiting = sum(client.llen(q) for q in QUEUES)
        return waiting + client.hlen("unacked")

    def requeue_dead_letters(self) -> list[dict[str, Any]]:
        with self.api as api:
            letters = api.get("/dlq/items", params={"limit": 1000}).json()["items"]
            if letters:
                assert api.post("/dlq/requeue", json={"all": True}).json()["requeued"] == len(letters)
        return letters


def sample(folder: Path) -> None:
    for n in range(N_FILES):
        sub = folder / f"d{n // 200:02d}"
        sub.mkdir(parents=True, exist_ok=True)
        if n % (N_FILES // N_MALICIOUS) == 7:
            (sub / f"bad{n:04d}.com").write_bytes(eicar())
        else:
            (sub / f"f{n:04d}.txt").write_bytes(f"benign file {n}\n".encode() * (1 + n % 50))


@pytest.fixture
def fault_stack(tmp_path: Path) -> Iterator[FaultStack]:
    cfg = stack.StackConfig(
        run_dir=tmp_path / "run", redis_port=free_port(), dsxa_port=free_port(), core_port=free_port(),
        fs_port=free_port(), scan_timeout=300,
    )  # fmt: skip
    for folder in (cfg.log_dir, cfg.run_dir / "redis", cfg.quarantine_dir):
        folder.mkdir(parents=True, exist_ok=True)
    sample(cfg.sample_dir)
    scanner_proxy, connector_proxy = free_port(), free_port()
    tuning = {
        "DSXCONNECT_SCANNER__SCAN_BINARY_URL": f"http://127.0.0.1:{scanner_proxy}/scan/binary/v2",
        "DSXCONNECT_SCANNER__TIMEOUT_S": "2",
        "DSXCONNECT_WORKERS__CONNECTOR_TIMEOUT_S": "3",
        "DSXCONNECT_WORKERS__MAX_RETRIES": "3",
        "DSXCONNECT_WORKERS__RETRY_BACKOFF_S": "0.2",
        "DSXCONNECT_WORKERS__RETRY_BACKOFF_MAX_S": "1",
        "DSXCONNECT_WORKERS__BREAKER_OPEN_S": "0.5",
        "DSXCONNECT_WORKERS__BREAKER_OPEN_MAX_S": "2",
        "DSXCONNECT_WORKERS__VISIBILITY_TIMEOUT_S": "8",
    }
    comps: dict[str, stack.Component] = {}
    for group in stack.components(cfg):
        for comp in group:
            env = dict(comp.env)
            if comp.name == "core" or comp.name.startswith("worker-"):
                env |= tuning
            if comp.name == "filesystem":
                env |= {
                    "DSXCONNECTOR_CONNECTOR_URL": f"http://127.0.0.1:{connector_proxy}/filesystem-connector",
                    "DSXCONNECTOR_MONITOR": "false",
                }
            comps[comp.name] = replace(comp, env=env)
    for name, port, upstream in (
        ("scanner-proxy", scanner_proxy, cfg.dsxa_url),
        ("connector-proxy", connector_proxy, f"http://127.0.0.1:{cfg.fs_port}"),
    ):
        comps[name] = stack.Component(
            name, (cfg.python, "-m", "uvicorn", "tests.support.fault_proxy:app", "--host", "127.0.0.1", "--port", str(port)),
            env={"FAULT_UPSTREAM": upstream}, port=port, health=f"http://127.0.0.1:{port}/__fault",
            marks=("fault_proxy", str(port)),
        )  # fmt: skip
    fs = FaultStack(cfg, comps)
    try:
        for name in ("redis", "dsxa", "scanner-proxy", "connector-proxy", "core"):
            fs.start(name)
        for name in comps:
            if name.startswith("worker-"):
                fs.start(name)
        fs.start("filesystem")
        yield fs
    finally:
        stack.stop(stack.read_records(cfg.run_dir), out=lambda _line: None)


def assert_exact(fs: FaultStack, job_id: str) -> dict[str, Any]:
    """Every file exactly one result, malicious ones acted on exactly once, counters equal the truth."""
    job = fs.wait_settled(job_id)
    results: list[dict[str, Any]] = []
    with fs.api as api:
        offset = 0
        while True:
            page = api.get("/scan/results", params={"job": job_id, "limit": 1000, "offset": offset}).json()
            results += page["items"]
            offset += 1000
            if len(page["items"]) < 1000:
                break
        stats = api.get("/scan/stats").json()
        dead = api.get("/dlq/stats").json()["count"]
    locations = [r["location"] for r in results]
    assert len(results) == N_FILES, f"{len(results)} results for {N_FILES} files"
    assert len(set(locations)) == N_FILES, "a file has two results"
    assert len({r["scan_request_id"] for r in results}) == N_FILES
    verdicts = {r["location"]: r["verdict"] for r in results}
    malicious = {loc for loc in locations if loc.endswith(".com")}
    assert len(malicious) == N_MALICIOUS
    assert all(verdicts[loc] == "Malicious" for loc in malicious), "a malicious file was not detected"
    assert all(v == "Benign" for loc, v in verdicts.items() if loc not in malicious), (
        "a benign file has no clean verdict"
    )
    assert all(r["error"] is None for r in results)
    moved = sorted(
        str(p.relative_to(fs.cfg.quarantine_dir)) for p in fs.cfg.quarantine_dir.rglob("*") if p.is_file()
    )
    assert moved == sorted(malicious), "quarantine does not hold exactly the malicious files"
    assert not any((fs.cfg.sample_dir / loc).exists() for loc in malicious)
    assert all(r["action"]["applied"] for r in results if r["location"] in malicious)
    assert job["processed"] == job["enqueued_total"] == N_FILES
    assert (
        job["verdicts"].get("Malicious") == N_MALICIOUS
        and job["verdicts"].get("Benign") == N_FILES - N_MALICIOUS
    )
    assert job["errors"] == 0
    assert stats["total"] == N_FILES and stats["actions"] == {"move": N_MALICIOUS} and stats["errors"] == 0
    assert fs.in_flight() == 0 and dead == 0
    return job


def test_scan_worker_killed_mid_job(fault_stack: FaultStack) -> None:
    job_id = fault_stack.start_full_scan()
    fault_stack.wait_processed(job_id, 200)
    fault_stack.kill("worker-scan")
    fault_stack.start("worker-scan")
    assert_exact(fault_stack, job_id)


def test_core_api_killed_mid_job(fault_stack: FaultStack) -> None:
    job_id = fault_stack.start_full_scan()
    fault_stack.wait_processed(job_id, 200)
    fault_stack.kill("core")
    fault_stack.start("core")
    assert_exact(fault_stack, job_id)


def test_redis_restarted_mid_job(fault_stack: FaultStack) -> None:
    job_id = fault_stack.start_full_scan()
    fault_stack.wait_processed(job_id, 200)
    fault_stack.kill("redis", signal.SIGTERM)  # AOF flushed on a clean shutdown
    fault_stack.start("redis")
    assert_exact(fault_stack, job_id)


def test_scanner_503_then_timeouts_then_back(fault_stack: FaultStack) -> None:
    job_id = fault_stack.start_full_scan()
    fault_stack.wait_processed(job_id, 200)
    fault_stack.fault("scanner-proxy", mode="status", status=503)
    wait_for(
        lambda: "circuit open" in fault_stack.api.get("/readyz").json()["checks"]["scanner"],
        timeout=30,
        what="breaker",
    )
    fault_stack.fault("scanner-proxy", mode="hang")
    processed = fault_stack.job(job_id)["processed"]
    wait_for(
        lambda: fault_stack.api.get("/readyz").status_code == 503,
        timeout=30,
        what="readyz to report the scanner",
    )
    fault_stack.fault("scanner-proxy", mode="pass")
    job = assert_exact(fault_stack, job_id)
    assert processed < N_FILES and job["processed"] == N_FILES


def test_connector_down_during_reads(fault_stack: FaultStack) -> None:
    job_id = fault_stack.start_full_scan()
    fault_stack.wait_processed(job_id, 200)
    fault_stack.kill("connector-proxy")  # the core's calls to the connector are refused
    wait_for(
        lambda: fault_stack.api.get("/dlq/stats").json()["by_stage"]["scan"] > 0,
        timeout=60,
        what="dead letters",
    )
    fault_stack.start("connector-proxy")
    fault_stack.wait_settled(job_id)
    letters = fault_stack.requeue_dead_letters()
    # reads ran out of retries; an action due while the connector was gone may have too
    assert any(letter["stage"] == "scan" for letter in letters)
    assert all("connector" in letter["reason"] for letter in letters)
    assert_exact(fault_stack, job_id)


def test_connector_down_during_actions(fault_stack: FaultStack) -> None:
    fault_stack.fault("connector-proxy", mode="status", status=503, method="PUT", path_contains="item_action")
    job_id = fault_stack.start_full_scan()
    wait_for(
        lambda: fault_stack.api.get("/dlq/stats").json()["by_stage"]["action"] > 0,
        timeout=90,
        what="dead letters",
    )
    fault_stack.fault("connector-proxy", mode="pass")
    fault_stack.wait_settled(job_id)
    letters = fault_stack.requeue_dead_letters()
    assert letters and all(
        letter["stage"] == "action" and "item_action" in letter["reason"] for letter in letters
    )
    assert_exact(fault_stack, job_id)
