"""``/metrics`` of a real core and real Celery workers (multiprocess mode, one PROMETHEUS_MULTIPROC_DIR)
after a real full scan: every counter and histogram count equals the files scanned, exactly; a
worker's own metrics port serves the same; the Grafana dashboard asks only for series that exist;
the per-minute history holds the scan."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from devstack.samples import sample_files, write_sample
from tests.support.local_stack import StackRun, write_files
from tests.support.procs import free_port, wait_for

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(300)]

BULK = 60
DASHBOARD = Path(__file__).resolve().parents[3] / "deploy" / "grafana" / "dsx-connect.json"


def samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """Every sample of a scrape by (name, sorted labels), parsed with prometheus_client's parser."""
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def total(found: dict[tuple[str, tuple[tuple[str, str], ...]], float], name: str, **labels: str) -> float:
    """The sum of ``name``'s samples whose labels include ``labels``."""
    return sum(
        value
        for (sample, sample_labels), value in found.items()
        if sample == name and set(labels.items()) <= set(sample_labels)
    )


@pytest.fixture(scope="module")
def local(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[StackRun, int]]:
    run_dir = tmp_path_factory.mktemp("metrics") / "run"
    run = StackRun(
        run_dir,
        env={"PROMETHEUS_MULTIPROC_DIR": str(run_dir / "prometheus")},
        connector_env={"DSXCONNECTOR_MONITOR": "false"},
    )
    port = free_port()
    scan_worker = run.components["worker-scan"]  # it also serves its host's series on a port of its own
    run.components["worker-scan"] = replace(
        scan_worker, env={**scan_worker.env, "DSXCONNECT_METRICS__WORKER_PORT": str(port)}
    )
    write_sample(run.cfg.sample_dir)
    write_files(run.cfg.sample_dir, BULK)
    try:
        yield run.start(), port
    finally:
        run.stop()


@pytest.fixture(scope="module")
def scanned(local: tuple[StackRun, int]) -> dict[str, Any]:
    run, _ = local
    job_id = run.start_full_scan()
    return run.wait_job(job_id, lambda job: job["status"] == "completed", what="the full scan")


def scrape(run: StackRun) -> str:
    answer = run.api.get(run.cfg.core_url + "/metrics")
    assert answer.status_code == 200, answer.text
    assert answer.headers["content-type"].startswith("text/plain; version=")
    return answer.text


def test_counters_and_histograms_equal_the_files_scanned(
    local: tuple[StackRun, int], scanned: dict[str, Any]
) -> None:
    run, _ = local
    files = len(sample_files()) + BULK
    malicious = sum(1 for f in sample_files() if f.verdict == "Malicious")
    assert scanned["processed"] == files
    # the result step counts right after the job completes, and the notification task of its last
    # batch runs after that: wait until every task has ended, then every count is exact

    def settled() -> dict[tuple[str, tuple[tuple[str, str], ...]], float] | None:
        found = samples(scrape(run))
        done = total(found, "dsxconnect_verdicts_total") == files
        return found if done and total(found, "dsxconnect_worker_items_in_progress") == 0 else None

    found = wait_for(settled, timeout=30, what="the verdict counters, and no task in progress")
    assert total(found, "dsxconnect_verdicts_total", verdict="Benign") == files - malicious
    assert total(found, "dsxconnect_verdicts_total", verdict="Malicious") == malicious
    assert total(found, "dsxconnect_scans_total") == files  # the store's own counters
    assert total(found, "dsxconnect_scan_duration_seconds_count") == files
    assert total(found, "dsxconnect_scan_duration_seconds_bucket", le="+Inf") == files
    assert total(found, "dsxconnect_task_batch_items_sum", queue="scan_request_queue") == files
    assert total(found, "dsxconnect_task_batch_items_sum", queue="scan_result_queue") == files
    for queue in ("scan_request_queue", "scan_result_queue", "verdict_action_queue"):
        tasks = total(found, "dsxconnect_task_batch_items_count", queue=queue)
        assert tasks >= 1 and total(found, "dsxconnect_queue_wait_seconds_count", queue=queue) == tasks
    assert total(found, "dsxconnect_action_outcomes_total", action="move", status="success") == malicious
    assert total(found, "dsxconnect_action_outcomes_total") == malicious
    assert total(found, "dsxconnect_connector_read_duration_seconds_count") >= 1  # read_files groups
    assert total(found, "dsxconnect_worker_items_in_progress") == 0
    assert total(found, "dsxconnect_items_in_flight") == 0
    assert total(found, "dsxconnect_dead_letters_total") == 0
    assert total(found, "dsxconnect_scan_cache_hits_total") == 0
    assert total(found, "dsxconnect_queue_depth", queue="scan_request_queue") == 0


def test_a_worker_metrics_port_serves_the_same_series(
    local: tuple[StackRun, int], scanned: dict[str, Any]
) -> None:
    _run, port = local
    files = len(sample_files()) + BULK
    text = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=10).text
    found = samples(text)
    assert total(found, "dsxconnect_scan_duration_seconds_count") == files
    assert total(found, "dsxconnect_task_batch_items_sum", queue="scan_request_queue") == files


def test_every_grafana_expression_asks_for_a_series_metrics_exposes(
    local: tuple[StackRun, int], scanned: dict[str, Any]
) -> None:
    run, _ = local
    exposed = {name for name, _labels in samples(scrape(run))}
    from tests.dsx_connect.metrics.test_grafana import dashboard_metric_names

    asked = dashboard_metric_names(json.loads(DASHBOARD.read_text()))
    assert asked, "the dashboard asks for no dsxconnect series"
    assert asked - exposed == set(), (
        f"the dashboard asks for series /metrics does not expose: {asked - exposed}"
    )


def test_the_minute_history_holds_the_scan(local: tuple[StackRun, int], scanned: dict[str, Any]) -> None:
    run, _ = local
    files = len(sample_files()) + BULK
    # the result step counts a batch right after storing it, so the job may read complete first
    got = wait_for(
        lambda: (h := run.get("/scan/stats/history", minutes=10)) and sum(h["total"]) >= files and h,
        timeout=10,
        what="the last batch counted",
    )
    assert len(got["total"]) == 10 and got["step_s"] == 60
    assert sum(got["total"]) == files
    assert sum(got["verdicts"]["Malicious"]) == 2
    assert sum(got["verdicts"]["Benign"]) == files - 2
    answer = run.api.get("/scan/stats/history", params={"minutes": 100_000})
    assert answer.status_code == 422
