"""What the scan step hands to the result step: the verdict, without the scanner's echo of our own
``X-Custom-Metadata`` (nothing downstream reads it, and it was a sixth of each outcome message).

The scan step runs as a worker runs it (``run_scan_batch``) against a scanner that echoes the header
as DSXA does (tests/support/scripted_scanner.py) and the contract connector stand-in; Redis is the
session's real one.
"""

from __future__ import annotations

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
