"""Beyond one machine, on one machine: two worker groups with their own Celery host names (``-n``),
each beside its own filesystem connector, share one Redis and one core API; 10,000 files in all,
scanned with exact counts, and both groups' scan workers take part (docs/performance.md,
"Capacity model")."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from celery import Celery

from devstack.graph import CONNECTOR_PREFIX
from devstack.procs import Component
from tests.support.local_stack import StackRun, distinct_free_ports, write_files
from tests.support.procs import wait_for

pytestmark = [pytest.mark.e2e, pytest.mark.slow, pytest.mark.timeout(300)]

PER_HOST = 5000  # 10,000 files in all
HOSTS = ("host-a", "host-b")
WORKERS = ("worker-scan", "worker-action", "worker-result", "worker-notify")
CONNECTOR_ENV = {
    "DSXCONNECTOR_MONITOR": "false",
    "DSXCONNECTOR_ITEM_ACTION": "nothing",
    "DSXCONNECTOR_SCAN_BATCH_SIZE": "100",
}


def named_worker(comp: Component, host: str, suffix: str) -> Component:
    """The worker with ``-n short@host`` instead of ``short@%h`` (this machine's name)."""
    argv = tuple(arg.replace("@%h", f"@{host}") for arg in comp.argv)
    assert argv != comp.argv, f"no -n NAME@%h in {comp.argv}"
    return replace(comp, name=comp.name + suffix, argv=argv)


def second_connector(comp: Component, port: int, asset: Path) -> Component:
    """Another filesystem connector of the same stack: its own port, asset and registration."""
    old = str(comp.port)
    url = f"http://127.0.0.1:{port}{CONNECTOR_PREFIX}"
    return replace(
        comp,
        name=comp.name + "-b",
        argv=tuple(str(port) if arg == old else arg for arg in comp.argv),
        port=port,
        health=comp.health.replace(f":{old}/", f":{port}/"),
        marks=tuple(m.replace(f"--port {old} ", f"--port {port} ") for m in comp.marks),
        label=url,
        env={**comp.env, "DSXCONNECTOR_CONNECTOR_URL": url, "DSXCONNECTOR_ASSET": str(asset)},
    )


@pytest.fixture
def two_hosts(tmp_path: Path) -> Iterator[tuple[StackRun, dict[str, str]]]:
    """Host A: the stack's workers and connector, renamed; host B: four more workers and a connector."""
    run = StackRun(tmp_path / "run", connector_env=CONNECTOR_ENV, scan_concurrency=2)
    asset_b = tmp_path / "asset-b"
    write_files(run.cfg.sample_dir, PER_HOST, prefix="a")
    write_files(asset_b, PER_HOST, prefix="b")

    taken = {run.cfg.redis_port, run.cfg.dsxa_port, run.cfg.core_port, run.cfg.fs_port}
    port_b = next(p for p in distinct_free_ports(5) if p not in taken)
    host_b = [named_worker(run.components[name], HOSTS[1], "-b") for name in WORKERS]
    host_b.append(second_connector(run.components["filesystem"], port_b, asset_b))
    for name in WORKERS:
        run.components[name] = named_worker(run.components[name], HOSTS[0], "")
    for comp in host_b:
        run.order[comp.name] = len(run.order)
        run.components[comp.name] = comp
    run.stages = [[run.components[c.name] for c in stage] for stage in run.stages]
    run.stages[1] += host_b[:-1]
    run.stages[2] += host_b[-1:]
    try:
        yield (
            run.start(),
            {HOSTS[0]: run.cfg.connector_url, HOSTS[1]: host_b[-1].env["DSXCONNECTOR_CONNECTOR_URL"]},
        )
    finally:
        run.stop()


def registered(run: StackRun, url: str) -> dict[str, Any] | None:
    listed = run.get("/connectors/list")
    return next((c for c in listed if str(c.get("url", "")).rstrip("/") == url), None)


def wait_registered(run: StackRun, url: str, host: str) -> dict[str, Any]:
    found = wait_for(lambda: registered(run, url), timeout=60, what=f"the connector of {host}")
    assert isinstance(found, dict)
    return found


def tasks_by_node(run: StackRun) -> dict[str, int]:
    """Tasks each Celery node has run, as the nodes themselves report them (remote control over Redis)."""
    client = Celery(broker=run.cfg.redis_url)
    try:
        stats = client.control.inspect(timeout=3).stats() or {}
    finally:
        client.close()
    return {node: sum(info.get("total", {}).values()) for node, info in stats.items()}


def test_two_worker_groups_with_their_own_connectors_scan_10000_files_exactly(
    two_hosts: tuple[StackRun, dict[str, str]],
) -> None:
    run, urls = two_hosts
    connectors = {host: wait_registered(run, url, host) for host, url in urls.items()}
    assert len({c["uuid"] for c in connectors.values()}) == 2

    jobs = {}
    for host, connector in connectors.items():
        response = run.api.post(f"/connectors/full_scan/{connector['uuid']}")
        assert response.status_code == 202, response.text
        jobs[host] = str(response.json()["job_id"])

    for host, job_id in jobs.items():
        job = run.wait_job(job_id, lambda j: j["status"] != "running", timeout=180, what=f"the job of {host}")
        assert job["status"] == "completed", job
        assert job["processed"] == job["enqueued_total"] == PER_HOST, job
        assert job["verdicts"] == {"Benign": PER_HOST}, job
        assert (job["errors"], job["skipped"], job["not_yet_scanned"]) == (0, 0, 0), job
        assert run.get("/scan/results", job=job_id, limit=1)["total"] == PER_HOST

    stats = run.get("/scan/stats")
    assert stats["total"] == 2 * PER_HOST, stats
    assert stats["verdicts"].get("Benign") == 2 * PER_HOST, stats

    done = tasks_by_node(run)
    for host in HOSTS:
        assert done.get(f"scan@{host}", 0) > 0, f"the scan workers of {host} ran nothing: {done}"
        assert all(node.endswith(HOSTS) for node in done), f"a node without the group's host name: {done}"
