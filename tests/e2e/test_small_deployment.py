"""``DSX_SMALL_DEPLOYMENT=1``: one worker process consumes the action, result and notification
queues (the queues stay separate). A real local stack scans the sample and every step still runs:
malicious files are moved (action), every result is stored and counted (result), the job's
completion is published (notify)."""

from __future__ import annotations

import re
from collections.abc import Iterator

import pytest

from devstack.samples import sample_files, write_sample
from tests.support.local_stack import StackRun
from tests.support.procs import wait_for

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(300)]


@pytest.fixture(scope="module")
def small(tmp_path_factory: pytest.TempPathFactory) -> Iterator[StackRun]:
    with pytest.MonkeyPatch.context() as env:
        env.setenv("DSX_SMALL_DEPLOYMENT", "1")
        run = StackRun(
            tmp_path_factory.mktemp("small") / "run", connector_env={"DSXCONNECTOR_MONITOR": "false"}
        )
    write_sample(run.cfg.sample_dir)
    try:
        yield run.start()
    finally:
        run.stop()


def test_one_light_worker_serves_action_result_and_notify(small: StackRun) -> None:
    assert [name for name in small.components if name.startswith("worker-")] == [
        "worker-scan",
        "worker-light",
    ]
    light = " ".join(small.components["worker-light"].argv)
    assert "-Q verdict_action_queue,scan_result_queue,scan_result_notification_queue " in light
    assert "--pool solo" in light

    job_id = small.start_full_scan()
    sample = sample_files()
    malicious = [f for f in sample if f.verdict == "Malicious"]
    job = small.wait_job(job_id, lambda j: j["status"] == "completed", what="the full scan to complete")
    assert job["processed"] == len(sample) and job["errors"] == 0
    assert job["verdicts"].get("Malicious") == len(malicious)
    assert job["verdicts"].get("Benign") == len(sample) - len(malicious)
    # the action queue: each malicious file moved to the quarantine
    for item in malicious:
        wait_for(
            lambda item=item: (small.cfg.quarantine_dir / item.path).is_file(), timeout=30, what=item.path
        )
        assert not (small.cfg.sample_dir / item.path).exists()
    # the notification queue, consumed by the same process
    log = small.cfg.log_dir / "worker-light.log"
    wait_for(
        lambda: re.search(
            rf"notify\.scan_result job={job_id} status=completed", log.read_text(errors="replace")
        ),
        timeout=15,
        what="the job's notification in worker-light.log",
    )
