"""The log lines DSX-Connect 1.x operators grep for, read from the process logs of a real local stack,
and the all-jobs SSE stream the dashboard follows (issue 17). One stack serves the module."""

from __future__ import annotations

import json
import re
import threading
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from devstack.samples import sample_files, write_sample
from tests.support.local_stack import StackRun
from tests.support.procs import wait_for

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(300)]


@pytest.fixture(scope="module")
def local(tmp_path_factory: pytest.TempPathFactory) -> Iterator[StackRun]:
    run = StackRun(
        tmp_path_factory.mktemp("oplog") / "run",
        env={"DSX_LOG_SSE_EVENTS": "1", "DSXCONNECT_SCANER__TIMEOUT_S": "5"},  # a typo of SCANNER
        connector_env={"DSXCONNECTOR_MONITOR": "false"},
    )
    write_sample(run.cfg.sample_dir)
    try:
        yield run.start()
    finally:
        run.stop()


class JobEvents:
    """``/subscribe/jobs`` read in a thread: the (event, data) pairs received."""

    def __init__(self, url: str) -> None:
        self.events: list[tuple[str, dict[str, Any]]] = []
        self.connected = threading.Event()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._read, args=(url,), daemon=True)
        self._thread.start()

    def _read(self, url: str) -> None:
        with httpx.Client(timeout=httpx.Timeout(5.0, read=None)) as client, client.stream("GET", url) as resp:
            self.connected.set()
            name = ""
            for line in resp.iter_lines():
                if self._stop.is_set():
                    return
                if line.startswith("event:"):
                    name = line.split(":", 1)[1].strip()
                elif line.startswith("data:") and name:
                    self.events.append((name, json.loads(line.split(":", 1)[1])))

    def close(self) -> None:
        self._stop.set()


@pytest.fixture(scope="module")
def scanned(local: StackRun) -> Iterator[tuple[str, JobEvents]]:
    events = JobEvents(local.cfg.api_url + "/subscribe/jobs")
    assert events.connected.wait(10)
    job_id = local.start_full_scan()
    local.wait_job(job_id, lambda job: job["status"] == "completed", what="the full scan to complete")
    yield job_id, events
    events.close()


def logs(local: StackRun, *names: str) -> str:
    return "\n".join((local.cfg.log_dir / f"{name}.log").read_text(errors="replace") for name in names)


def test_notification_and_completion_lines(local: StackRun, scanned: tuple[str, JobEvents]) -> None:
    job_id, _ = scanned
    total = len(sample_files())
    notified = rf"notify\.scan_result job={job_id} status=\w+ processed=\d+ total=\S+ duration=\S+"
    completed = rf"job\.complete job={job_id} processed={total} total={total} finished_at=(\S+?Z)"
    # the notification step runs just after the result step that completed the job
    wait_for(lambda: re.search(notified, logs(local, "worker-notify")), timeout=15, what="notify.scan_result")
    wait_for(
        lambda: re.search(completed, logs(local, "worker-notify", "core")), timeout=15, what="job.complete"
    )
    assert len(re.findall(completed, logs(local, "worker-notify", "core"))) == 1  # once, whoever saw it first


def test_the_connector_logs_enqueue_done_posted(local: StackRun, scanned: tuple[str, JobEvents]) -> None:
    job_id, _ = scanned
    total = len(sample_files())
    line = f"enqueue_done posted job={job_id} enqueued_total={total} status=200"
    wait_for(lambda: line in logs(local, "filesystem"), timeout=15, what="enqueue_done posted")


def test_the_jobs_stream_carries_every_change_and_each_is_logged(
    local: StackRun, scanned: tuple[str, JobEvents]
) -> None:
    job_id, events = scanned
    wait_for(
        lambda: any(
            e == "job_summary" and d["job_id"] == job_id and d["status"] == "completed"
            for e, d in events.events
        ),
        timeout=15,
        what="the completed job_summary on /subscribe/jobs",
    )
    assert (
        f'sse.event stream=all_job_summaries event=job_summary id=None data={{\\"job_id\\": \\"{job_id}\\"'
        in logs(local, "core")
    )


def test_the_api_and_every_worker_name_an_unknown_setting_at_start(local: StackRun) -> None:
    for name in ("core", "worker-scan", "worker-action", "worker-result", "worker-notify"):
        assert "unknown setting DSXCONNECT_SCANER__TIMEOUT_S is ignored" in logs(local, name), name
