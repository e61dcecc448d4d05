"""The whole local stack as `make up` starts it, on free ports with a run directory of its own.

One stack serves the module. The tests run in file order: the watched-folder test adds a scan after
the full scan, so `/scan/stats` is read once right after `up`; `make status` and `make down` end it.
"""

from __future__ import annotations

import hashlib
import os
import re
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from devstack.auth import api_headers
from devstack.probes import port_free, redis_ping
from devstack.procs import group_members, is_running, read_records
from devstack.samples import SampleFile, eicar_bytes, sample_files
from devstack.settings import StackConfig
from tests.support.local_stack import FULL_STACK
from tests.support.procs import PYTHON, REPO_ROOT, base_env, free_port, wait_for

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(600)]

COMPONENTS = list(FULL_STACK)


@dataclass
class LocalStack:
    cfg: StackConfig
    env: dict[str, str]
    output: str
    job_id: str
    stats_after_scan: dict[str, Any]

    def get(self, path: str, **params: Any) -> Any:
        """GET an API path (under /dsx-connect/api/v1) and return its JSON, asserting 200."""
        resp = httpx.get(self.cfg.api_url + path, params=params, timeout=10, headers=api_headers(self.cfg))
        assert resp.status_code == 200, f"GET {path} -> {resp.status_code}: {resp.text}"
        return resp.json()

    def results(self, **params: Any) -> list[dict[str, Any]]:
        return self.get("/scan/results", limit=500, **params)["items"]

    def make(self, target: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            ["make", "-s", "--no-print-directory", target],
            cwd=REPO_ROOT, env=self.env, capture_output=True, text=True, timeout=120,
        )  # fmt: skip


def distinct_free_ports(count: int) -> list[int]:
    ports: set[int] = set()
    while len(ports) < count:
        ports.add(free_port())
    return sorted(ports)


def logs_excerpt(run_dir: Path, lines: int = 30) -> str:
    parts = []
    for log in sorted((run_dir / "logs").glob("*.log")):
        tail = log.read_text(errors="replace").splitlines()[-lines:]
        parts.append(f"--- {log.name} ---\n" + "\n".join(tail))
    return "\n".join(parts)


@pytest.fixture(scope="module")
def local_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalStack]:
    run_dir = tmp_path_factory.mktemp("stack-run")
    redis, dsxa, core, fs = distinct_free_ports(4)
    env = base_env(
        DSX_RUN_DIR=str(run_dir), DSX_REDIS_PORT=str(redis), DSX_DSXA_PORT=str(dsxa),
        DSX_CORE_PORT=str(core), DSX_FS_PORT=str(fs), DSX_SCAN_TIMEOUT="240",
        VENV=str(Path(PYTHON).parent.parent),
    )  # fmt: skip
    cfg = StackConfig.from_env(env)
    try:
        up = subprocess.run(
            [PYTHON, "-m", "devstack", "up"],
            cwd=REPO_ROOT,
            env=env,
            capture_output=True,
            text=True,
            timeout=480,
        )
        assert up.returncode == 0, (
            f"stack.py up exited {up.returncode}\n{up.stdout}\n{up.stderr}\n{logs_excerpt(run_dir)}"
        )
        job = re.search(r"full scan of .*: job (\S+)", up.stdout)
        assert job, up.stdout
        stats = httpx.get(f"{cfg.api_url}/scan/stats", timeout=10, headers=api_headers(cfg)).json()
        yield LocalStack(cfg, env, up.stdout, job.group(1), stats)
    finally:
        subprocess.run([PYTHON, "-m", "devstack", "down"], cwd=REPO_ROOT, env=env, timeout=120, check=False)


def sample_by_verdict(verdict: str) -> list[SampleFile]:
    return [f for f in sample_files() if f.verdict == verdict]


def location_is(location: str, rel_path: str) -> bool:
    location = location.replace("\\", "/")
    return location == rel_path or location.endswith("/" + rel_path)


def result_for(items: list[dict[str, Any]], rel_path: str) -> dict[str, Any]:
    found = [item for item in items if location_is(item["location"], rel_path)]
    assert len(found) == 1, f"{len(found)} results for {rel_path}: {[i['location'] for i in items]}"
    return found[0]


def test_up_prints_the_urls_and_a_one_line_verdict_summary(local_stack: LocalStack) -> None:
    cfg, out = local_stack.cfg, local_stack.output
    benign, malicious = len(sample_by_verdict("Benign")), len(sample_by_verdict("Malicious"))

    assert (
        f"scanned {benign + malicious}: {benign} Benign, {malicious} Malicious; quarantined {malicious}"
        in (out.splitlines())
    )
    assert f"http://127.0.0.1:{cfg.core_port}/\n" in out
    assert f"http://127.0.0.1:{cfg.core_port}/docs" in out
    assert str(cfg.run_dir) in out
    assert "make down" in out


def test_full_scan_job_completed_with_every_file_processed(local_stack: LocalStack) -> None:
    job = local_stack.get(f"/scan/jobs/{local_stack.job_id}")
    sample = sample_files()

    assert job["status"] == "completed"
    assert job["enqueued_total"] == job["processed"] == len(sample)
    assert job["verdicts"].get("Benign") == len(sample_by_verdict("Benign"))
    assert job["verdicts"].get("Malicious") == len(sample_by_verdict("Malicious"))
    assert job["errors"] == 0
    assert job["bytes_scanned"] == sum(len(f.data) for f in sample)


def test_each_sample_file_got_its_verdict(local_stack: LocalStack) -> None:
    items = local_stack.results(job=local_stack.job_id)
    assert len(items) == len(sample_files())
    for sample_file in sample_files():
        result = result_for(items, sample_file.path)
        assert result["verdict"] == sample_file.verdict, (sample_file.path, result)
        assert result["file_info"]["sha256"] == hashlib.sha256(sample_file.data).hexdigest()
        assert result["file_info"]["size_in_bytes"] == len(sample_file.data)

    malicious = local_stack.results(verdict="Malicious", job=local_stack.job_id)
    assert len(malicious) == len(sample_by_verdict("Malicious"))
    for sample_file in sample_by_verdict("Malicious"):
        result_for(malicious, sample_file.path)


def test_malicious_files_are_quarantined_keeping_their_relative_path(local_stack: LocalStack) -> None:
    cfg = local_stack.cfg
    for sample_file in sample_by_verdict("Malicious"):
        assert not (cfg.sample_dir / sample_file.path).exists(), sample_file.path
        assert (cfg.quarantine_dir / sample_file.path).read_bytes() == sample_file.data
    for sample_file in sample_by_verdict("Benign"):
        assert (cfg.sample_dir / sample_file.path).read_bytes() == sample_file.data
        assert not (cfg.quarantine_dir / sample_file.path).exists()


def test_one_result_is_readable_by_its_id(local_stack: LocalStack) -> None:
    eicar = result_for(local_stack.results(job=local_stack.job_id), "inbox/eicar.com")

    result = local_stack.get(f"/scan/results/{eicar['scan_request_id']}")

    assert result["scan_request_id"] == eicar["scan_request_id"]
    assert result["event_type"] == "scan_result"
    assert result["schema_version"] == 1
    assert result["job_id"] == local_stack.job_id
    assert result["verdict"] == "Malicious"
    assert location_is(result["location"], "inbox/eicar.com")
    assert (result["action"]["requested"], result["action"]["applied"]) == ("move", True), result["action"]


def test_stats_after_the_full_scan_count_the_sample(local_stack: LocalStack) -> None:
    stats = local_stack.stats_after_scan
    malicious = len(sample_by_verdict("Malicious"))

    assert stats["total"] == len(sample_files())
    assert stats["verdicts"].get("Benign") == len(sample_by_verdict("Benign"))
    assert stats["verdicts"].get("Malicious") == malicious
    assert stats["errors"] == 0
    assert stats["actions"].get("move") == malicious


def test_a_file_dropped_into_the_watched_folder_is_scanned_and_quarantined(local_stack: LocalStack) -> None:
    cfg = local_stack.cfg
    name = "dropped-later.com"
    staged = cfg.run_dir / name
    staged.write_bytes(eicar_bytes())
    os.replace(staged, cfg.sample_dir / name)  # appears whole, never half-written

    def malicious_result() -> dict[str, Any] | None:
        return next(
            (i for i in local_stack.results(verdict="Malicious") if location_is(i["location"], name)), None
        )

    wait_for(malicious_result, timeout=90, what=f"a Malicious result for {name}")
    result = malicious_result()
    assert result is not None
    wait_for(lambda: (cfg.quarantine_dir / name).is_file(), timeout=30, what=f"{name} in the quarantine")

    assert result["file_info"]["sha256"] == hashlib.sha256(eicar_bytes()).hexdigest()
    assert not (cfg.sample_dir / name).exists()
    assert (cfg.quarantine_dir / name).read_bytes() == eicar_bytes()


def test_make_status_reports_every_component_healthy(local_stack: LocalStack) -> None:
    status = local_stack.make("status")

    assert status.returncode == 0, status.stdout + status.stderr
    rows = {line.split()[0]: line.split()[1] for line in status.stdout.splitlines()[1:]}
    assert rows == dict.fromkeys(COMPONENTS, "ok")
    assert "/healthz -> 200" in status.stdout
    assert f"PING 127.0.0.1:{local_stack.cfg.redis_port}" in status.stdout


def test_the_live_redis_refuses_a_client_without_the_password(local_stack: LocalStack) -> None:
    import redis

    cfg = local_stack.cfg
    anonymous = redis.Redis(port=cfg.redis_port, socket_timeout=5)
    wrong = redis.Redis(port=cfg.redis_port, password="not-the-password", socket_timeout=5)
    for client in (anonymous, wrong):
        with client, pytest.raises(redis.AuthenticationError):
            client.ping()
    with redis.Redis.from_url(cfg.redis_url, socket_timeout=5) as operator:  # the URL of the core and workers
        assert operator.ping() is True
    assert not redis_ping(cfg.redis_port)


def test_make_down_leaves_no_process_of_the_run_alive(local_stack: LocalStack) -> None:
    cfg = local_stack.cfg
    records = read_records(cfg.run_dir)
    assert [r["name"] for r in records] == COMPONENTS
    pids = {pid for record in records for pid in group_members(record["pid"])}
    assert len(pids) > len(COMPONENTS)  # the prefork scan worker has children

    down = local_stack.make("down")

    assert down.returncode == 0, down.stdout + down.stderr
    assert [pid for pid in pids if is_running(pid)] == []
    assert list((cfg.run_dir / "pids").glob("*.json")) == []
    assert all(port_free(port) for port in (cfg.redis_port, cfg.dsxa_port, cfg.core_port, cfg.fs_port))
    after = local_stack.make("status")
    assert after.returncode != 0
    assert "nothing running" in after.stdout
