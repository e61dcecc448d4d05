"""What the scan step hands to the result step: the verdict, without the scanner's echo of our own
``X-Custom-Metadata`` (nothing downstream reads it, and it was a sixth of each outcome message).

The scan step runs as a worker runs it (``run_scan_batch``) against a scanner that echoes the header
as DSXA does (tests/support/scripted_scanner.py) and the contract connector stand-in; Redis is the
session's real one.
"""

from __future__ import annotations

import time
from dataclasses import replace

import pytest
import redis

from dsx_connect.settings import Settings
from dsx_connect.state.connectors import ConnectorRegistry
from dsx_connect.workers.outcome import ItemOutcome
from dsx_connect.workers.scan import run_scan_batch
from shared.models import ConnectorInstance, ScanTask
from tests.dsx_connect.workers.standins import Sent, Storage, context
from tests.support.scripted_scanner import app as scripted_scanner
from tests.support.threaded_server import serving

pytestmark = pytest.mark.integration


def test_outcomes_carry_the_verdict_but_not_the_scanners_echo_of_our_metadata(
    storage: tuple[Storage, str], client: redis.Redis
) -> None:
    store, connector_url = storage
    store.items["a.txt"] = (b"alpha", "v1")
    ctx = context(client, Settings())
    ConnectorRegistry(client, 180).register(ConnectorInstance(uuid="c1", name="contract", url=connector_url))
    task = ScanTask(id="r-a", connector_uuid="c1", location="a.txt", metainfo="a.txt", job_id="j1")
    sent = Sent()

    with serving(scripted_scanner, name="scripted scanner") as scanner:
        ctx.scan_config = replace(ctx.scan_config, scan_url=f"{scanner}/scan/binary/v2")
        run_scan_batch(ctx, [task], sent.dispatch())

    (outcome,) = sent.stored
    assert outcome.verdict is not None and outcome.verdict.verdict == "Benign"
    assert outcome.verdict.file_info.file_size_in_bytes == len(b"alpha")
    assert outcome.verdict.x_custom_metadata is None  # the scanner echoed it: dropped
    message = outcome.dump_json()
    assert "file-loc" not in message  # our metadata names the location: nowhere in the message
    assert ItemOutcome.load_many([message])[0].verdict == outcome.verdict


@pytest.mark.parametrize("state", ["pause", "cancel"])
def test_a_requeued_letter_of_a_paused_or_cancelled_job_is_not_sent_again_every_lease(
    client: redis.Redis, state: str
) -> None:
    """The scan step held a paused job's requeued item (or skipped a cancelled job's) without touching
    the letter's lease: the sweep sent another copy every lease (seven copies after a paused hour and
    a half, all scanned on resume), and a cancelled job's letter stayed "requeued" for its retention."""
    from dsx_connect import keys
    from dsx_connect.jobs.requeue import redispatch_expired_requeues
    from dsx_connect.state.dead_letters import DeadLetter

    ctx = context(client, Settings())
    job_id = ctx.jobs.create("c1", "contract")
    task = ScanTask(id="r-held", connector_uuid="c1", location="a.txt", metainfo="a.txt", job_id=job_id)
    letter = DeadLetter(
        id=task.id, stage="scan", reason="gave up", attempts=6, job_id=job_id, connector_uuid="c1",
        location="a.txt", payload=task.model_dump(mode="json"),
    )  # fmt: skip
    ctx.dead_letters.add_many([letter])
    lease = ctx.settings.jobs.redispatch_after_s
    now = time.time()
    ctx.dead_letters.mark_requeued([letter], now + 1)  # its lease about to pass
    ctx.jobs.transition(job_id, state)
    run_scan_batch(ctx, [task], Sent().dispatch())  # the requeued copy reaches the scan step
    resent: list[object] = []
    # past that lease: still held (paused: its lease runs from the hold), or skipped (cancelled)
    redispatch_expired_requeues(ctx.dead_letters, lease, lambda _stage, p: resent.extend(p), now=now + 2)
    assert resent == []
    if state == "cancel":
        (kept,) = ctx.dead_letters.peek([task.id])
        assert kept.requeued_until is None  # the letter stays, no longer requeued
    else:
        assert (client.zscore(keys.DEAD_LETTERS_REQUEUED, task.id) or 0) > now + lease
