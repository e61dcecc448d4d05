"""Fault injection on the real local stack: every file gets exactly one recorded verdict, whatever fails.

Each test starts its own stack (fresh Redis) on free ports with ``N_FILES`` files, one in a hundred
malicious (moved to quarantine), injects one fault in the middle of a full scan, and then checks the
truth: every file has exactly one result, every malicious file was acted on exactly once, the job's
counters equal the truth, nothing is left in flight, and what ran out of retries sits in the
dead-letter queue with its reason until requeued (then requeued: results + dead letters = files).

Faults go through real processes: ``kill -9`` of workers, the API and Redis (AOF ``everysec`` and
``always``), a Sentinel failover (three real Sentinels, the master killed), a step raising an
unexpected error, and a fault-injecting proxy (tests/support/fault_proxy.py) in front of the scanner
(503 bursts, hangs, slowness) and of the connector (down for ``CONNECTOR_DOWN_S``).

The issue asked for 10,000 files per fault; on two shared cores the whole file must stay near six
minutes, so each fault runs with ``N_FILES`` (``DSX_FAULT_FILES``, 600 by default) in the suite, and
``inv faults`` runs it with 10,000 (``--files``, ``--only`` for one fault). docs/reliability.md prints
the figures.
"""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import httpx
import pytest
import redis

from devstack.auth import api_headers, stack_secrets
from devstack.emulators import redis_server_binary
from devstack.graph import components
from devstack.probes import wait_ready
from devstack.procs import Component, _gone, read_records, spawn, stop
from devstack.scan import start_full_scan
from devstack.settings import StackConfig
from dsx_connect import keys
from tests.dsxa_lite.samples import eicar
from tests.support.procs import free_port, restartable_port, wait_for

N_FILES = int(os.environ.get("DSX_FAULT_FILES", "600"))
N_MALICIOUS = max(N_FILES // 100, 1)
SCALE = max(1.0, N_FILES / 600)  # waits on the pipeline grow with the files (10,000: ``inv faults``)
# "mid-job" needs several batches: 120 items per batch at 600 files, the default 1,000 at 10,000
BATCH = min(1000, max(100, N_FILES // 5))

# pytest.ini's 300 s per test, grown with the files like the waits
pytestmark = [pytest.mark.e2e, pytest.mark.slow, pytest.mark.timeout(int(300 * SCALE))]
CONNECTOR_DOWN_S = float(os.environ.get("DSX_FAULT_CONNECTOR_DOWN_S", "90"))
MASTER = "dsxmaster"
QUEUES = ("scan_request_queue", "verdict_action_queue", "scan_result_queue", "scan_result_notification_queue")


@dataclass
class FaultStack:
    cfg: StackConfig
    comps: dict[str, Component]
    records: dict[str, dict[str, Any]] = field(default_factory=dict)
    order: int = 0
    sentinels: list[int] = field(default_factory=list)

    @property
    def api(self) -> httpx.Client:
        return httpx.Client(base_url=self.cfg.api_url, timeout=15.0, headers=api_headers(self.cfg))

    def start(self, *names: str) -> None:
        """Start the named components together, then wait until each is ready."""
        for name in names:
            self.records[name] = spawn(self.cfg.run_dir, self.comps[name], self.order)
            self.order += 1
        for name in names:
            wait_ready(self.comps[name], self.records[name], 90)

    def kill(self, name: str, sig: int = signal.SIGKILL) -> None:
        pid = self.records[name]["pid"]
        os.killpg(pid, sig)
        wait_for(lambda: _gone(pid), timeout=30, what=f"{name} to exit")

    def fault(self, proxy: str, **mode: Any) -> None:
        port = self.comps[proxy].port
        httpx.post(f"http://127.0.0.1:{port}/__fault", json=mode, timeout=5).raise_for_status()

    def redis(self) -> redis.Redis:
        """The current master (through the Sentinels when there are some), with the run's password."""
        if self.sentinels:
            from redis.sentinel import Sentinel

            password = self.password
            sentinel = Sentinel(
                [("127.0.0.1", port) for port in self.sentinels],
                sentinel_kwargs={"password": password, "socket_timeout": 2},
                socket_timeout=2,
            )
            return sentinel.master_for(MASTER, decode_responses=True, socket_timeout=5, password=password)
        return redis.Redis.from_url(self.cfg.redis_url, decode_responses=True)

    @property
    def password(self) -> str:
        return stack_secrets(self.cfg.run_dir)["redis_password"]

    def proxy_state(self, proxy: str) -> dict[str, Any]:
        port = self.comps[proxy].port
        return httpx.get(f"http://127.0.0.1:{port}/__fault", timeout=5).json()  # type: ignore[no-any-return]

    def job(self, job_id: str) -> dict[str, Any]:
        with self.api as api:
            return api.get(f"/scan/jobs/{job_id}").json()

    def start_full_scan(self) -> str:
        def registered() -> dict[str, Any] | None:
            with self.api as api:
                return next(iter(api.get("/connectors/list").json()), None)

        connector = wait_for(registered, timeout=60, what="the connector to register")
        return start_full_scan(self.cfg, connector)  # type: ignore[arg-type]

    def job_in_redis(self, job_id: str) -> dict[str, Any]:
        """The job's counters read from Redis (while the API is down)."""
        data = self.redis().hgetall(keys.job(job_id))
        return {"processed": int(data.get("processed", 0))}

    def wait_processed(self, job_id: str, at_least: int) -> None:
        wait_for(
            lambda: self.job(job_id)["processed"] >= at_least,
            timeout=120 * SCALE,
            interval=0.02,
            what=f"{at_least} processed",
        )

    def wait_settled(self, job_id: str, timeout: float = 180) -> dict[str, Any]:
        def settled() -> dict[str, Any] | None:
            # A requeued letter's attempt is over only once its outcome is stored (the letter goes
            # with it): the queues alone can look empty while a batch passes between two steps, and
            # the job of a requeue is already completed. Read in this order, the job is final.
            with self.api as api:
                if api.get("/dlq/stats").json()["requeued"]:
                    return None
            job = self.job(job_id)
            return job if job["status"] == "completed" and self.in_flight() == 0 else None

        return wait_for(settled, timeout=timeout * SCALE, interval=0.2, what=f"job {job_id} to settle")  # type: ignore[return-value]

    def in_flight(self) -> int:
        try:
            client = self.redis()
            waiting = sum(client.llen(q) for q in QUEUES)
            return waiting + client.hlen("unacked")
        except redis.RedisError:
            return -1  # a failover in progress

    def dead_letters(self) -> list[dict[str, Any]]:
        """Every dead letter (the listing pages by 1,000: a 10,000-file run can have more)."""
        letters: list[dict[str, Any]] = []
        with self.api as api:
            while True:
                page = api.get("/dlq/items", params={"limit": 1000, "offset": len(letters)}).json()
                letters += page["items"]
                if len(page["items"]) < 1000:
                    return letters

    def requeue_dead_letters(self) -> list[dict[str, Any]]:
        letters = self.dead_letters()
        if letters:
            with self.api as api:
                assert api.post("/dlq/requeue", json={"all": True}).json()["requeued"] == len(letters)
        return letters


def sample(folder: Path) -> None:
    for n in range(N_FILES):
        sub = folder / f"d{n // 200:02d}"
        sub.mkdir(parents=True, exist_ok=True)
        if n % 100 == 7:
            (sub / f"bad{n:04d}.com").write_bytes(eicar())
        else:
            (sub / f"f{n:04d}.txt").write_bytes(f"benign file {n}\n".encode() * (1 + n % 50))


def sentinel_components(cfg: StackConfig, comps: dict[str, Component]) -> list[int]:
    """A replica of the stack's Redis and three Sentinels watching them (Debian's redis-sentinel),
    every one behind the run's Redis password (in their config files, not on a command line)."""
    replica_port, ports = restartable_port(), [free_port() for _ in range(3)]
    password = stack_secrets(cfg.run_dir)["redis_password"]
    folder = cfg.run_dir / "replica"
    folder.mkdir(parents=True, exist_ok=True)
    replica_conf = folder / "redis.conf"
    replica_conf.write_text(f"requirepass {password}\nmasterauth {password}\n")
    comps["redis-replica"] = Component(
        "redis-replica",
        (redis_server_binary(), str(replica_conf), "--port", str(replica_port), "--bind", "127.0.0.1",
         "--dir", str(folder), "--appendonly", "yes", "--save", "", "--replicaof", "127.0.0.1", str(cfg.redis_port)),
        port=replica_port, health=f"redis://127.0.0.1:{replica_port}", marks=("redis-server", str(replica_port)),
    )  # fmt: skip
    for n, port in enumerate(ports):
        conf = cfg.run_dir / f"sentinel-{n}.conf"
        conf.write_text(
            f"port {port}\nbind 127.0.0.1\ndir {cfg.run_dir}\nrequirepass {password}\n"
            f"sentinel sentinel-pass {password}\n"
            f"sentinel monitor {MASTER} 127.0.0.1 {cfg.redis_port} 2\n"
            f"sentinel auth-pass {MASTER} {password}\n"
            f"sentinel down-after-milliseconds {MASTER} 1000\n"
            f"sentinel failover-timeout {MASTER} 5000\n"
            f"sentinel parallel-syncs {MASTER} 1\n"
        )
        conf.chmod(0o600)
        comps[f"sentinel-{n}"] = Component(
            f"sentinel-{n}", ("redis-sentinel", str(conf)), port=port,
            health=f"redis://127.0.0.1:{port}", marks=("redis-sentinel", str(port)),
        )  # fmt: skip
    return ports


def wait_replicated(fs: FaultStack) -> None:
    """The replica holds the master's data and every Sentinel counts it as a good one: a failover can
    promote it (a replica still in its first sync cannot be)."""
    replica = redis.Redis(port=fs.comps["redis-replica"].port, password=fs.password, decode_responses=True)

    def synced() -> bool:
        if replica.info("replication").get("master_link_status") != "up":
            return False
        for port in fs.sentinels:
            sentinel = redis.Redis(port=port, password=fs.password, decode_responses=True)
            found = sentinel.sentinel_slaves(MASTER)  # parsed: is_slave, is_sdown, is_disconnected, ...
            sentinel.close()
            good = [
                r
                for r in found
                if r.get("is_slave") and not r.get("is_sdown") and not r.get("is_disconnected")
            ]
            if len(good) != 1:
                return False
        return True

    wait_for(synced, timeout=60, interval=0.2, what="the replica to sync and the Sentinels to see it")
    replica.close()


@contextmanager
def open_stack(
    tmp_path: Path,
    *,
    env: dict[str, str] | None = None,
    appendfsync: str = "everysec",
    sentinel: bool = False,
    held: tuple[str, ...] = (),
) -> Iterator[FaultStack]:
    """A fresh stack with the sample, a proxy in front of the scanner, of the connector and of the
    core (for the connector's calls); the components named in ``held`` are left for the test to start."""
    cfg = StackConfig(
        run_dir=tmp_path / "run", redis_port=restartable_port(), dsxa_port=free_port(),
        core_port=restartable_port(), fs_port=free_port(), scan_timeout=300,
    )  # fmt: skip
    for folder in (cfg.log_dir, cfg.run_dir / "redis", cfg.quarantine_dir):
        folder.mkdir(parents=True, exist_ok=True)
    sample(cfg.sample_dir)
    scanner_proxy, connector_proxy, core_proxy = free_port(), restartable_port(), free_port()
    tuning = {
        "DSXCONNECT_SCANNER__SCAN_BINARY_URL": f"http://127.0.0.1:{scanner_proxy}/scan/binary/v2",
        "DSXCONNECT_SCANNER__TIMEOUT_S": "2",
        "DSXCONNECT_WORKERS__CONNECTOR_TIMEOUT_S": "3",
        "DSXCONNECT_WORKERS__MAX_RETRIES": "3",
        "DSXCONNECT_WORKERS__RETRY_BACKOFF_S": "0.2",
        "DSXCONNECT_WORKERS__RETRY_BACKOFF_MAX_S": "1",
        "DSXCONNECT_WORKERS__BREAKER_OPEN_S": "0.5",
        "DSXCONNECT_WORKERS__BREAKER_OPEN_MAX_S": "2",
        "DSXCONNECT_WORKERS__VISIBILITY_TIMEOUT_S": "30",
        "DSXCONNECT_WORKERS__ITEM_DEADLINE_S": "8",
        "DSXCONNECT_SCANNER__CONNECT_TIMEOUT_S": "1",
        "DSXCONNECT_JOBS__REDISPATCH_AFTER_S": "30",
        "DSXCONNECT_WORKERS__SCAN_REQUEST_BATCH_DEFAULT_SIZE": str(BATCH),
        "DSXCONNECT_WORKERS__SCAN_REQUEST_BATCH_MAX_SIZE": str(BATCH),
    } | (env or {})
    old_fsync = os.environ.get("DSX_REDIS_APPENDFSYNC")
    os.environ["DSX_REDIS_APPENDFSYNC"] = appendfsync
    try:
        groups = components(cfg)
    finally:
        if old_fsync is None:
            os.environ.pop("DSX_REDIS_APPENDFSYNC", None)
        else:
            os.environ["DSX_REDIS_APPENDFSYNC"] = old_fsync
    comps: dict[str, Component] = {}
    sentinels = sentinel_components(cfg, comps) if sentinel else []
    if sentinels:
        hosts = ",".join(f"127.0.0.1:{port}" for port in sentinels)
        password = stack_secrets(cfg.run_dir)["redis_password"]
        tuning |= {
            "DSXCONNECT_REDIS_URL": f"redis+sentinel://:{password}@{hosts}/{MASTER}/0?sentinel_password={password}",
            "DSXCONNECT_REDIS_WAIT_REPLICAS": "1",
        }
    for group in groups:
        for comp in group:
            comp_env = dict(comp.env)
            if comp.name == "core" or comp.name.startswith("worker-"):
                comp_env |= tuning
            if comp.name == "filesystem":
                comp_env |= {
                    "DSXCONNECTOR_CONNECTOR_URL": f"http://127.0.0.1:{connector_proxy}/filesystem-connector",
                    "DSXCONNECTOR_MONITOR": "false",
                    # the connector's calls to the core go through a proxy too (a slow core)
                    "DSXCONNECTOR_DSX_CONNECT_URL": f"http://127.0.0.1:{core_proxy}",
                }
            comps[comp.name] = replace(comp, env=comp_env)
    for name, port, upstream in (
        ("scanner-proxy", scanner_proxy, cfg.dsxa_url),
        ("connector-proxy", connector_proxy, f"http://127.0.0.1:{cfg.fs_port}"),
        ("core-proxy", core_proxy, cfg.core_url),
    ):
        comps[name] = Component(
            name, (cfg.python, "-m", "uvicorn", "tests.support.fault_proxy:app", "--host", "127.0.0.1", "--port", str(port)),
            env={"FAULT_UPSTREAM": upstream}, port=port, health=f"http://127.0.0.1:{port}/__fault",
            marks=("fault_proxy", str(port)),
        )  # fmt: skip
    fs = FaultStack(cfg, comps, sentinels=sentinels)
    try:
        first = ["redis", *(["redis-replica", "sentinel-0", "sentinel-1", "sentinel-2"] if sentinels else [])]
        fs.start(*first)
        if sentinels:
            wait_replicated(fs)
        workers = [name for name in comps if name.startswith("worker-") and name not in held]
        fs.start("dsxa", "scanner-proxy", "connector-proxy", "core-proxy", "core", *workers)
        fs.start("filesystem")
        yield fs
    finally:
        stop(read_records(cfg.run_dir), out=lambda _line: None)


@pytest.fixture
def fault_stack(tmp_path: Path) -> Iterator[FaultStack]:
    with open_stack(tmp_path) as fs:
        yield fs


def job_results(api: httpx.Client, job_id: str) -> list[dict[str, Any]]:
    """Every stored result of the job, page by page."""
    results: list[dict[str, Any]] = []
    while True:
        page = api.get("/scan/results", params={"job": job_id, "limit": 1000, "offset": len(results)}).json()
        results += page["items"]
        if len(page["items"]) < 1000:
            return results


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
    unclean = [r for r in results if r["location"] not in malicious and r["verdict"] != "Benign"]
    assert not unclean, (
        f"benign files without a clean verdict: {[(r['location'], r['verdict'], r['error']) for r in unclean[:3]]}"
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


def settle_and_requeue(fs: FaultStack, job_id: str) -> list[dict[str, Any]]:
    """Wait for the job, then send every dead letter back (results + dead letters = files first)."""
    job = fs.wait_settled(job_id)
    letters = fs.dead_letters()
    with fs.api as api:
        failed = api.get("/scan/results", params={"job": job_id, "limit": 1}).json()["total"]
    assert failed == job["processed"] == N_FILES, "every file has a result (or is a dead letter with one)"
    fs.requeue_dead_letters()
    return letters


def test_scan_worker_killed_mid_job(fault_stack: FaultStack) -> None:
    job_id = fault_stack.start_full_scan()
    fault_stack.wait_processed(job_id, N_FILES // 5)
    fault_stack.kill("worker-scan")
    fault_stack.start("worker-scan")
    assert_exact(fault_stack, job_id)


def test_core_api_killed_mid_job(fault_stack: FaultStack) -> None:
    job_id = fault_stack.start_full_scan()
    fault_stack.wait_processed(job_id, N_FILES // 5)
    fault_stack.kill("core")
    fault_stack.start("core")
    assert_exact(fault_stack, job_id)


def test_core_api_killed_mid_rescan_stores_each_unchanged_file_once(fault_stack: FaultStack) -> None:
    """A rescan's unchanged files are accepted and stored by the API itself (dsx_connect/cache/intake.py).
    ``kill -9`` of the API while it does that, batches still coming: each file still gets exactly one
    result, served from the index, and the job counts every file once."""
    cold = fault_stack.start_full_scan()
    assert_exact(fault_stack, cold)  # the malicious files are in quarantine now: the rest is unchanged
    unchanged = N_FILES - N_MALICIOUS
    # the first submission goes through, the next ones wait at the proxy: the kill lands between
    # batches, never after them (a delay instead could be outrun by a slowed test)
    fault_stack.fault("core-proxy", mode="hang", pass_first=1, path_contains="/scan/request_batch")
    job_id = fault_stack.start_full_scan()
    fault_stack.wait_processed(job_id, 1)
    fault_stack.kill("core")
    assert fault_stack.job_in_redis(job_id)["processed"] <= BATCH < unchanged, (
        "the kill came after the rescan"
    )
    fault_stack.start("core")
    fault_stack.fault("core-proxy", mode="pass")
    job = fault_stack.wait_settled(job_id)
    with fault_stack.api as api:
        results = job_results(api, job_id)
        dead = api.get("/dlq/stats").json()["count"]
    assert len(results) == unchanged and len({r["location"] for r in results}) == unchanged
    assert all(r["verdict"] == "Benign" and r["error"] is None for r in results)
    assert job["processed"] == job["enqueued"] == job["enqueued_total"] == job["cached"] == unchanged, job
    assert fault_stack.in_flight() == 0 and dead == 0


@pytest.mark.parametrize("appendfsync", ["everysec", "always"])
def test_redis_killed_mid_job(tmp_path: Path, appendfsync: str) -> None:
    """``kill -9`` of Redis (no clean AOF flush) in the middle of the scan, then a restart from the AOF."""
    with open_stack(tmp_path, appendfsync=appendfsync) as fs:
        job_id = fs.start_full_scan()
        fs.wait_processed(job_id, N_FILES // 5)
        fs.kill("redis", signal.SIGKILL)
        fs.start("redis")
        assert_exact(fs, job_id)


def test_sentinel_failover_mid_job(tmp_path: Path) -> None:
    """The master is killed mid-scan; the Sentinels promote its replica, every client follows it (the
    core's Redis clients, pub/sub and the Celery broker), and the old master comes back as a replica.
    With ``DSXCONNECT_REDIS_WAIT_REPLICAS=1`` nothing acknowledged was only on the dead master."""
    with open_stack(tmp_path, sentinel=True) as fs:
        job_id = fs.start_full_scan()
        fs.wait_processed(job_id, N_FILES // 5)
        fs.kill("redis", signal.SIGKILL)
        replica_port = fs.comps["redis-replica"].port

        def promoted() -> bool:
            try:
                return fs.redis().connection_pool.get_master_address()[1] == replica_port  # type: ignore[attr-defined,no-any-return]
            except redis.RedisError:
                return False

        wait_for(promoted, timeout=60, what="the Sentinels to promote the replica")
        fs.start("redis")  # the old master rejoins as a replica (the WAIT needs one)
        assert_exact(fs, job_id)


def test_a_step_raising_unexpectedly_mid_job(fault_stack: FaultStack) -> None:
    """A step that raises what no handler expects (the breaker's state unreadable) dead-letters each
    item of its batches with the reason; nothing is acked away; requeued, they finish exactly."""
    fs = fault_stack
    # the scanner holds every scan until the breaker is broken: the tasks under way (a scan waiting
    # means its task read the breaker) finish, the later ones raise; a slowed test could otherwise
    # see the whole job through before it breaks anything
    fs.fault("scanner-proxy", mode="hang", path_contains="/scan/binary")
    job_id = fs.start_full_scan()
    wait_for(lambda: fs.proxy_state("scanner-proxy")["faulted"] > 0, timeout=60, what="a scan under way")
    fs.redis().hset("dsxc:breaker:scanner", "open_until", "not a number")
    fs.fault("scanner-proxy", mode="pass")
    wait_for(
        lambda: fs.api.get("/dlq/stats").json()["count"] >= 10,
        timeout=60,
        what="dead letters of the failing tasks",
    )
    fs.redis().hdel("dsxc:breaker:scanner", "open_until")
    letters = settle_and_requeue(fs, job_id)
    assert letters and all("unexpected error in the scan step" in letter["reason"] for letter in letters)
    assert_exact(fs, job_id)


def test_a_batch_outliving_the_old_visibility_timeout_is_processed_once(tmp_path: Path) -> None:
    """Every scan takes 0.7 s and a scan process holds 4 at a time, so a batch of 120 needs ~21 s, past
    the 19 s visibility timeout. Tasks stop starting items at their deadline and hand the rest back;
    none is delivered twice while it runs: the scanner sees each file exactly once."""
    env = {
        "DSXCONNECT_WORKERS__SCAN_CONCURRENCY": "4",
        "DSXCONNECT_WORKERS__READ_BATCH_SIZE": "1",
        "DSXCONNECT_WORKERS__ITEM_DEADLINE_S": "3",
        "DSXCONNECT_WORKERS__VISIBILITY_TIMEOUT_S": "19",
        "DSXCONNECT_JOBS__REDISPATCH_AFTER_S": "19",
    }
    with open_stack(tmp_path, env=env) as fs:
        fs.fault("scanner-proxy", mode="delay", delay_s=0.7, path_contains="/scan/binary")
        started = time.monotonic()
        job_id = fs.start_full_scan()
        assert_exact(fs, job_id)
        scans = fs.proxy_state("scanner-proxy")["paths"].get("/scan/binary/v2", 0)
        assert scans == N_FILES, f"{scans} scans for {N_FILES} files: a batch was delivered twice"
        assert time.monotonic() - started > 19


def test_scanner_503_then_timeouts_then_back(fault_stack: FaultStack) -> None:
    job_id = fault_stack.start_full_scan()
    fault_stack.wait_processed(job_id, N_FILES // 5)
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
    """The connector is unreachable for ``CONNECTOR_DOWN_S`` (90 s): reads run out of retries into the
    dead-letter store (each with its failed result); requeued once it is back, they finish exactly."""
    job_id = fault_stack.start_full_scan()
    fault_stack.wait_processed(job_id, N_FILES // 5)
    fault_stack.kill("connector-proxy")  # the core's calls to the connector are refused
    down = time.monotonic()
    wait_for(
        lambda: fault_stack.api.get("/dlq/stats").json()["by_stage"]["scan"] > 0,
        timeout=60,
        what="dead letters",
    )
    wait_for(lambda: time.monotonic() - down >= CONNECTOR_DOWN_S, timeout=CONNECTOR_DOWN_S + 5, interval=1)
    fault_stack.start("connector-proxy")
    letters = settle_and_requeue(fault_stack, job_id)
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


def test_an_object_replaced_between_its_scan_and_its_action_is_not_touched(tmp_path: Path) -> None:
    """A malicious file scanned, then replaced by a clean file of other content before its action
    runs (the action worker held back): the action leaves the new file where it is, the result
    records why, and the new version is scanned (and found clean)."""
    with open_stack(tmp_path, held=("worker-action",)) as fs:
        job_id = fs.start_full_scan()
        # every benign file has its result; the malicious ones wait in the action queue
        wait_for(
            lambda: fs.job(job_id)["processed"] == N_FILES - N_MALICIOUS
            and fs.redis().llen("verdict_action_queue") > 0,
            timeout=180 * SCALE, interval=0.2, what="every scan done, the actions queued",
        )  # fmt: skip
        replaced = "d00/bad0007.com"
        target = fs.cfg.sample_dir / replaced
        fresh = target.with_name("incoming.tmp")
        fresh.write_bytes(b"a clean file now, other content and size\n")
        os.replace(fresh, target)  # a new object (inode, size, mtime) at the scanned location
        fs.start("worker-action")
        job = fs.wait_settled(job_id)
        assert job["processed"] == N_FILES and job["errors"] == 0

        with fs.api as api:
            results = job_results(api, job_id)
            by_location = {r["location"]: r for r in results}
            assert len(results) == len(by_location) == N_FILES
            skipped = by_location[replaced]
            assert skipped["verdict"] == "Malicious"  # the version that was scanned
            assert skipped["action"]["applied"] is False and skipped["action"]["status"] == "skipped"
            assert skipped["action"]["message"] == "action skipped: object changed since scan"

            def rescanned() -> dict[str, Any] | None:
                page = api.get("/scan/results", params={"verdict": "Benign", "limit": 50}).json()["items"]
                return next((r for r in page if r["location"] == replaced and r["job_id"] != job_id), None)

            fresh_result: dict[str, Any] = wait_for(  # type: ignore[assignment]
                rescanned, timeout=90, interval=0.2, what="the new version's result"
            )
            assert fresh_result["verdict"] == "Benign" and fresh_result["action"]["applied"] is False
            stats = api.get("/scan/stats").json()
            assert api.get("/dlq/stats").json()["count"] == 0

        assert target.read_bytes() == b"a clean file now, other content and size\n"  # untouched
        moved = sorted(
            str(p.relative_to(fs.cfg.quarantine_dir)) for p in fs.cfg.quarantine_dir.rglob("*") if p.is_file()
        )
        malicious = sorted(loc for loc in by_location if loc.endswith(".com"))
        assert moved == [loc for loc in malicious if loc != replaced]  # the others acted on, once
        assert stats["actions"] == {"move": N_MALICIOUS - 1}
        assert stats["total"] == N_FILES + 1  # the new version's result beside the scanned one's
