"""End to end in a real Celery worker: the result step feeds new results, the forwarder runs as threads of
the worker consuming scan_result_notification_queue (1.x syslog settings alone turn it on), a
redelivered batch is not fed twice, and the worker's shutdown stops the forwarder."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

from dsx_connect.queues import RESULT_TASK, SCAN_RESULT_NOTIFICATION_QUEUE, SCAN_RESULT_QUEUE
from dsx_connect.settings import get_settings
from dsx_connect.state.feed import destination_states
from dsx_connect.workers.outcome import ConnectorRef, ItemOutcome
from shared.models import DsxaFileInfo, DsxaVerdict, ScanTask
from tests.dsx_connect.superlog.peers import Rsyslog
from tests.support.procs import PYTHON, ServiceProcess, base_env, wait_for

pytestmark = pytest.mark.integration

WORKER_DB = 12


def outcome(n: int) -> dict[str, object]:
    return ItemOutcome(
        task=ScanTask(
            id=f"w-{n:03d}", connector_uuid="c1", location=f"f/{n}.txt", metainfo=f"{n}.txt", job_id="wj"
        ),
        connector=ConnectorRef(uuid="c1", name="filesystem-connector"),
        verdict=DsxaVerdict(
            verdict="Malicious" if n == 7 else "Benign",
            file_info=DsxaFileInfo(file_type="TEXT", file_size_in_bytes=n),
        ),
    ).dump()


@pytest.fixture
def worker(
    rsyslog: Rsyslog, redis_url: str, logs_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[tuple[ServiceProcess, redis.Redis, str]]:
    db_url = redis_url.rsplit("/", 1)[0] + f"/{WORKER_DB}"
    client = redis.Redis.from_url(db_url, decode_responses=True)
    client.flushdb()
    env = base_env(
        DSXCONNECT_REDIS_URL=db_url,
        DSXCONNECT_SYSLOG__SYSLOG_SERVER_URL="127.0.0.1",  # 1.x names alone: the syslog feed is on
        DSXCONNECT_SYSLOG__SYSLOG_SERVER_PORT=str(rsyslog.ports["tcp"]),
        DSXCONNECT_SYSLOG__TRANSPORT="tcp",
        DSXCONNECT_SYSLOG__HOSTNAME="worker-host",
        DSXCONNECT_SUPERLOG__FLUSH_INTERVAL_S="0.05",
    )
    argv = [
        PYTHON, "-m", "celery", "-A", "dsx_connect.workers.celery_app:celery_app", "worker",
        "-Q", f"{SCAN_RESULT_QUEUE},{SCAN_RESULT_NOTIFICATION_QUEUE}", "--pool", "solo",
        "-n", f"superlog{WORKER_DB}@%h", "--loglevel", "INFO",
    ]  # fmt: skip
    proc = ServiceProcess(f"superlog-worker-{WORKER_DB}", argv, env, logs_dir).start()
    monkeypatch.setenv("DSXCONNECT_REDIS_URL", db_url)
    get_settings.cache_clear()
    try:
        wait_for(
            lambda: "ready." in proc.log_path.read_text(errors="replace"), timeout=60, what="celery worker"
        )
        yield proc, client, db_url
    finally:
        proc.stop()
        get_settings.cache_clear()
        client.flushdb()
        client.close()


def test_results_stored_by_the_worker_reach_syslog_once(
    worker: tuple[ServiceProcess, redis.Redis, str], rsyslog: Rsyslog
) -> None:
    from dsx_connect.workers.celery_app import create_celery_app

    proc, client, _ = worker
    app = create_celery_app()  # the test's own producer, on the worker's broker
    before = len(rsyslog.lines("tcp"))
    batch = [outcome(n) for n in range(20)]
    app.send_task(RESULT_TASK, args=(batch,))
    app.send_task(RESULT_TASK, args=(batch[:10],))  # a redelivered batch: stored once, fed once
    app.send_task(RESULT_TASK, args=([outcome(n) for n in range(20, 25)],))
    lines = rsyslog.wait_lines("tcp", before + 25)[before:]
    wait_for(
        lambda: destination_states(client, ["syslog"])["syslog"]["sent"] == 25, timeout=10, what="25 sent"
    )
    ids = [json.loads(line.split(" dsx-connect ", 1)[1])["scan_request_id"] for line in lines]
    assert sorted(ids) == [f"w-{n:03d}" for n in range(25)]
    assert all(line.startswith(("<134>", "<130>")) and " worker-host dsx-connect {" in line for line in lines)
    malicious = next(line for line in lines if '"scan_request_id": "w-007"' in line)
    assert malicious.startswith("<130>")  # local0, critical
    log = proc.log_path.read_text(errors="replace")
    assert "superlog forwarder running in this worker for syslog" in log
    proc.stop()
    assert "superlog forwarder for syslog stopped" in proc.log_path.read_text(errors="replace")
    assert not client.exists("dsxc:superlog:syslog:lock")  # released on shutdown
