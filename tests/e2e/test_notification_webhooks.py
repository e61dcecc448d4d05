"""Notification webhooks through the whole local stack: a full scan's Malicious results reach a real
receiver that verifies each signature (the Standard Webhooks reference library), and the core reports
the deliveries in ``/notifications/stats`` and ``/metrics``."""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from devstack.samples import sample_files, write_sample
from dsx_connect.notifications.sink import message_id
from tests.support.local_stack import StackRun
from tests.support.procs import wait_for
from tests.support.webhook_receiver import Receiver, running_receiver

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(300)]

SECRET = "whsec_" + base64.b64encode(b"an end-to-end webhook secret....").decode()


@pytest.fixture(scope="module")
def receiver(logs_dir: Path) -> Iterator[Receiver]:
    with running_receiver(SECRET, logs_dir) as running:
        yield running


@pytest.fixture(scope="module")
def local(tmp_path_factory: pytest.TempPathFactory, receiver: Receiver) -> Iterator[StackRun]:
    hooks = [{"url": receiver.url, "secret": SECRET, "verdicts": ["Malicious"]}]
    run = StackRun(
        tmp_path_factory.mktemp("webhooks") / "run",
        env={
            "DSXCONNECT_NOTIFICATIONS__WEBHOOKS": json.dumps(hooks),
            "DSXCONNECT_SUPERLOG__FLUSH_INTERVAL_S": "0.05",
        },
        connector_env={"DSXCONNECTOR_MONITOR": "false"},
    )
    write_sample(run.cfg.sample_dir)
    try:
        yield run.start()
    finally:
        run.stop()


def test_malicious_results_of_a_full_scan_arrive_signed_and_are_counted(
    local: StackRun, receiver: Receiver
) -> None:
    job_id = local.start_full_scan()
    local.wait_job(job_id, lambda job: job["status"] == "completed", what="the full scan")
    malicious = {f.path for f in sample_files() if f.verdict == "Malicious"}
    wait_for(lambda: len(receiver.received()) == len(malicious), timeout=30, what="the malicious results")
    got = receiver.received()
    assert receiver.refused() == []
    assert {m["message"]["data"]["verdict"] for m in got} == {"Malicious"}
    assert all(m["message"]["data"]["job_id"] == job_id for m in got)
    assert {m["message"]["data"]["location"] for m in got} == malicious
    # each webhook-id names the stored outcome it carries (its request id, then a digest of it)
    assert all(m["id"] == message_id(m["message"]["data"]) for m in got)
    assert len({m["id"] for m in got}) == len(malicious)

    # the receiver records a call before it answers; the notify step counts it once answered
    stats = wait_for(
        lambda: (w := local.get("/notifications/stats")["webhooks"])[0]["sent"] == len(malicious) and w,
        timeout=10,
        what="the last notification acknowledged",
    )
    assert [(h["url"], h["verdicts"], h["sent"], h["status"]) for h in stats] == [
        (receiver.url, ["Malicious"], len(malicious), "up")
    ]
    metrics = local.api.get(local.cfg.core_url + "/metrics").text
    assert f'dsxconnect_webhook_sent_total{{webhook="{stats[0]["id"]}"}} {len(malicious)}' in metrics
