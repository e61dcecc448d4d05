"""Registration, full scans and change events against a real (fake) core over HTTP."""

from __future__ import annotations

import time
from collections.abc import AsyncGenerator, AsyncIterator, Callable
from typing import Any

import anyio
import httpx
import pytest

from shared.connector import Item, WebhookReply, create_connector_app
from shared.connector import runtime as runtime_module
from shared.connector.routes import WEBHOOK_SUBMIT_RETRY_S
from shared.connector.runtime import ConnectorRuntime
from tests.shared.connector.core_receiver import FakeCore, running_core
from tests.shared.connector.memory_connector import MemoryConnector, MemorySettings
from tests.support.procs import restartable_port

pytestmark = [pytest.mark.integration, pytest.mark.anyio]


async def until(predicate: Callable[[], Any], timeout: float = 10.0, what: str = "condition") -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if value := predicate():
            return value
        await anyio.sleep(0.02)
    raise TimeoutError(f"timed out waiting for {what}")


def make_connector(core_url: str, count: int = 25, **settings: Any) -> MemoryConnector:
    options = {"heartbeat_interval_s": 0.2, "job_control_poll_s": 0.02, "job_control_every_batches": 1}
    config = MemorySettings(dsx_connect_url=core_url, **(options | settings))
    return MemoryConnector(config, items={f"f{i:03d}.bin": b"x" * i for i in range(count)})


@pytest.fixture
async def runtime(fake_core: FakeCore, request: pytest.FixtureRequest) -> AsyncIterator[ConnectorRuntime]:
    params = getattr(request, "param", {})
    rt = ConnectorRuntime(make_connector(fake_core.url, **params))
    await rt.start()
    try:
        yield rt
    finally:
        await rt.stop()


async def test_registers_then_heartbeats_then_unregisters(fake_core: FakeCore) -> None:
    rt = ConnectorRuntime(make_connector(fake_core.url))
    await rt.start()
    await until(lambda: len(fake_core.registrations) >= 3, what="heartbeats")
    assert rt.registered
    await rt.stop()
    codes = fake_core.registration_codes()
    assert codes[0] == 201 and set(codes[1:]) == {200}
    body = fake_core.registrations[0][1]
    assert body["status"] == "ready" and body["url"] == "http://127.0.0.1:8699/memory-connector"
    assert body["uuid"] == rt.settings.uuid and body["version"] == "9.9.9"
    assert fake_core.unregistered == [rt.settings.uuid]


async def test_keeps_retrying_registration_while_the_core_is_down() -> None:
    port = restartable_port()  # tried while nothing listens, then served
    rt = ConnectorRuntime(make_connector(f"http://127.0.0.1:{port}"))
    await rt.start()
    try:
        await until(lambda: rt.last_registration_error, what="a failed registration")
        assert not rt.registered
        with running_core(port=port) as core:
            await until(lambda: rt.registered, what="registration once the core is up")
            assert core.registration_codes()[0] == 201
    finally:
        await rt.stop()


async def test_full_scan_submits_every_item_in_batches_and_reports_the_total(
    fake_core: FakeCore, runtime: ConnectorRuntime
) -> None:
    progress, started = runtime.start_full_scan("job-1", None)
    assert started and runtime.start_full_scan("job-1", None) == (progress, False)
    await until(lambda: progress.state == "completed", what="the scan to complete")
    assert fake_core.enqueue_done["job-1"] == 25
    assert sorted(len(b) for b in fake_core.batches) == [5, 10, 10]  # the core's default batch size
    requests = fake_core.in_job_order()
    assert sorted(r["location"] for r in requests) == sorted(runtime.connector.items)
    assert [r["job_item_id"] for r in requests] == [str(i) for i in range(1, 26)]
    first = requests[0]
    assert first["scan_job_id"] == "job-1" and first["metainfo"] == first["location"]
    assert first["connector"]["uuid"] == runtime.settings.uuid
    assert first["connector_url"] == runtime.settings.connector_url and first["size_in_bytes"] == 0


async def test_full_scan_honours_limit_filter_and_batch_override(fake_core: FakeCore) -> None:
    rt = ConnectorRuntime(make_connector(fake_core.url, filter="f00*", scan_batch_size=4))
    await rt.start()
    try:
        rt.start_full_scan("job-2", 7)
        await until(lambda: "job-2" in fake_core.enqueue_done)
    finally:
        await rt.stop()
    assert fake_core.enqueue_done["job-2"] == 7
    assert fake_core.locations("job-2") == [f"f00{i}.bin" for i in range(7)]
    assert sorted(len(b) for b in fake_core.batches) == [3, 4]


@pytest.mark.parametrize("in_flight", [1, 2, 3])
async def test_a_full_scan_lists_the_next_batch_while_the_core_answers_the_last(
    fake_core: FakeCore, in_flight: int
) -> None:
    # a core storing cached results before it answers: each batch is held until as many as allowed
    # were seen at once (a fixed hold could end before a slowed connector sent the last of them)
    fake_core.batch_answer_s, fake_core.answer_at_once = 10.0, in_flight
    rt = ConnectorRuntime(
        make_connector(fake_core.url, scan_batch_size=5, full_scan_batches_in_flight=in_flight)
    )
    await rt.start()
    try:
        progress, _ = rt.start_full_scan("job-9", None)
        await until(lambda: progress.state == "completed", what="the scan to complete")
    finally:
        await rt.stop()
    assert fake_core.batches_at_once == in_flight, "never more batches at once than allowed"
    assert fake_core.enqueue_done["job-9"] == 25, "reported once every batch was answered"
    assert [r["job_item_id"] for r in fake_core.in_job_order()] == [str(i) for i in range(1, 26)]


async def test_no_item_is_lost_when_the_core_blips(fake_core: FakeCore, runtime: ConnectorRuntime) -> None:
    fake_core.fail_batches = 3
    runtime.start_full_scan("job-3", None)
    await until(lambda: "job-3" in fake_core.enqueue_done)
    assert fake_core.fail_batches == 0
    assert fake_core.locations("job-3") == sorted(runtime.connector.items)
    assert fake_core.enqueue_done["job-3"] == 25


async def test_a_refused_batch_is_resubmitted_item_by_item(
    fake_core: FakeCore, runtime: ConnectorRuntime
) -> None:
    fake_core.reject_prefix = "f003"
    runtime.start_full_scan("job-4", None)
    await until(lambda: "job-4" in fake_core.enqueue_done)
    assert fake_core.locations("job-4") == sorted(set(runtime.connector.items) - {"f003.bin"})
    assert fake_core.enqueue_done["job-4"] == 24 and len(fake_core.singles) == 9


async def test_single_requests_when_the_core_has_batching_off(
    fake_core: FakeCore, runtime: ConnectorRuntime
) -> None:
    fake_core.workers["scan_request_batch_enabled"] = False
    runtime.start_full_scan("job-5", None)
    await until(lambda: "job-5" in fake_core.enqueue_done)
    assert not fake_core.batches and len(fake_core.singles) == 25
    assert fake_core.enqueue_done["job-5"] == 25


async def test_a_paused_job_waits_and_resumes(fake_core: FakeCore, runtime: ConnectorRuntime) -> None:
    fake_core.flags["job-6"] = {"paused": "1"}
    progress, _ = runtime.start_full_scan("job-6", None)
    await until(lambda: fake_core.flag_reads.get("job-6", 0) >= 3, what="polling while paused")
    assert progress.state == "paused" and not fake_core.requests
    fake_core.flags["job-6"] = {}
    await until(lambda: progress.state == "completed", what="the scan to complete")
    assert fake_core.enqueue_done["job-6"] == 25


@pytest.mark.parametrize(
    "runtime", [{"submit_retry_max_s": 0.2, "full_scan_batches_in_flight": 1}], indirect=True
)
async def test_a_core_busy_with_a_paused_jobs_items_is_waited_out_not_failed(
    fake_core: FakeCore, runtime: ConnectorRuntime
) -> None:
    """The core answers 429 while a paused job's items count as in flight; the connector charged that
    to SUBMIT_RETRY_MAX_S, a dead core's budget, failed the scan and never listed the rest."""
    fake_core.busy = True
    progress, _ = runtime.start_full_scan("job-busy", None)
    await until(lambda: fake_core.busy_answers >= 1, what="a first 429")
    fake_core.flags["job-busy"] = {"paused": "1"}
    started = time.monotonic()
    await until(lambda: progress.state == "paused", what="the scan to see the pause")
    reads = fake_core.flag_reads["job-busy"]
    await until(
        lambda: fake_core.flag_reads["job-busy"] >= reads + 10 and time.monotonic() - started > 0.5,
        what="a pause longer than the retry budget",
    )
    assert progress.state == "paused" and "job-busy" not in fake_core.enqueue_done
    fake_core.busy = False
    fake_core.flags["job-busy"] = {}
    await until(lambda: progress.state == "completed", what="the scan to complete")
    assert fake_core.enqueue_done["job-busy"] == 25 and len(fake_core.locations("job-busy")) == 25


async def test_the_asset_does_not_change_under_a_running_scan_and_a_shutdown_fails_its_job(
    fake_core: FakeCore,
) -> None:
    """A PUT /config of the asset during a full scan was applied: its queued items were then read, and
    acted on, in the new asset (another file under the same name). And a connector stopped mid-scan
    left its job running until the core's stall sweep, with no reason given."""
    from shared.connector.runtime import ScanRunning

    rt = ConnectorRuntime(make_connector(fake_core.url))
    await rt.start()
    try:
        fake_core.flags["job-live"] = {"paused": "1"}
        progress, _ = rt.start_full_scan("job-live", None)
        await until(lambda: progress.state == "paused", what="the scan to hold")
        with pytest.raises(ScanRunning, match="job-live"):
            await rt.reconfigure({"asset": "/elsewhere"})
        with pytest.raises(ScanRunning):
            await rt.reconfigure({"filter": "*.pdf"})
        await rt.reconfigure({"item_action": "nothing"})  # what an action does may change
    finally:
        await rt.stop()
    assert progress.state == "failed"
    assert "shut down" in fake_core.enumeration_errors["job-live"]
    assert fake_core.enqueue_done["job-live"] == progress.submitted


@pytest.mark.parametrize("runtime", [{"full_scan_batches_in_flight": 1}], indirect=True)
async def test_a_cancelled_job_stops_and_reports_what_was_submitted(
    fake_core: FakeCore, runtime: ConnectorRuntime
) -> None:
    def cancel_after_first(batch: list[dict[str, Any]]) -> None:
        fake_core.flags["job-7"] = {"cancel": "1"}

    fake_core.on_batch = cancel_after_first
    progress, _ = runtime.start_full_scan("job-7", None)
    await until(lambda: "job-7" in fake_core.enqueue_done)
    assert progress.state == "cancelled"
    # The flags are read while a batch is on its way, so the read after the first batch may come
    # before the core has it; with one batch in flight the second waits for the first's answer and
    # the read after it sees the cancel. What is reported is what was accepted.
    assert fake_core.enqueue_done["job-7"] == len(fake_core.requests) in (10, 20)


@pytest.mark.parametrize(
    "runtime", [{"job_control_every_batches": 100, "full_scan_batches_in_flight": 1}], indirect=True
)
async def test_a_scan_cancelled_while_the_core_is_busy_keeps_no_cursor(
    fake_core: FakeCore, runtime: ConnectorRuntime
) -> None:
    """A batch stopped by a cancel while the core was busy (429) was dropped, the listing went on to
    its end, and the scan counted as whole: the connector kept its cursor (Graph's delta link), so
    every later incremental scan skipped the items never submitted."""
    completed: list[str] = []

    async def scan_completed() -> None:
        completed.append("cursor kept")

    runtime.connector.scan_completed = scan_completed  # type: ignore[method-assign]
    progress, _ = runtime.start_full_scan("job-whole", None)
    await until(lambda: progress.state == "completed", what="a scan the core takes whole")
    assert completed == ["cursor kept"]

    fake_core.busy = True
    progress, _ = runtime.start_full_scan("job-cancel", None)
    await until(lambda: fake_core.busy_answers >= 1, what="a first 429")
    fake_core.flags["job-cancel"] = {"cancel": "1"}
    await until(lambda: "job-cancel" in fake_core.enqueue_done, what="the cancelled scan to end")
    assert progress.state == "cancelled" and progress.enumerated == 25 and progress.submitted == 0
    assert completed == ["cursor kept"]  # not a second time


async def test_changed_items_are_submitted_without_a_job(fake_core: FakeCore) -> None:
    rt = ConnectorRuntime(make_connector(fake_core.url, monitor=True))
    await rt.start()
    try:
        assert rt.watching
        rt.connector.push("f001.bin", "f002.bin")  # type: ignore[attr-defined]
        await until(lambda: len(fake_core.requests) == 2, what="change events")
    finally:
        await rt.stop()
    assert not rt.watching
    assert {r["scan_job_id"] for r in fake_core.requests} == {None}
    assert {r["job_item_id"] for r in fake_core.requests} == {None}


async def test_a_core_that_forgot_the_connector_gets_it_registered_again_and_every_item(
    fake_core: FakeCore,
) -> None:
    """A 404 "not registered" (the registration's TTL ran out between heartbeats, Redis lost it) is
    about the connector, not the items: it re-registers and sends them again, skipping none."""
    rt = ConnectorRuntime(make_connector(fake_core.url, heartbeat_interval_s=3600))
    await rt.start()
    try:
        await until(lambda: rt.registered)
        registered = len(fake_core.registrations)
        fake_core.forgotten = True
        progress, _ = rt.start_full_scan("job-11", None)
        await until(lambda: progress.state == "completed", what="the scan to complete")
    finally:
        await rt.stop()
    assert len(fake_core.registrations) > registered, "registered again at once, not at the next heartbeat"
    assert fake_core.enqueue_done["job-11"] == 25
    assert fake_core.locations("job-11") == sorted(rt.connector.items)


async def test_changes_the_core_did_not_take_are_sent_again_before_the_watcher_moves_on(
    fake_core: FakeCore,
) -> None:
    """The watcher is held at its yield while the core refuses: a storage cursor (Graph's delta
    link) is kept until the changes are submitted, and the same items go again once it recovers."""
    rt = ConnectorRuntime(make_connector(fake_core.url, monitor=True, submit_retry_max_s=0.2))
    connector: MemoryConnector = rt.connector  # type: ignore[assignment]
    fake_core.fail_batches = 1_000_000
    await rt.start()
    try:
        connector.push("f001.bin", "f002.bin")
        await until(lambda: fake_core.fail_batches < 1_000_000 - 2, what="submissions failing")
        assert connector.seen == [] and fake_core.requests == []
        fake_core.fail_batches = 0
        await until(lambda: len(fake_core.requests) == 2, what="the same changes, submitted")
        await until(lambda: connector.seen, what="the watcher resumed")
    finally:
        await rt.stop()
    assert sorted(r["location"] for r in fake_core.requests) == ["f001.bin", "f002.bin"]


class BreakingWatcher(MemoryConnector):
    """A watcher that fails as it starts while ``broken``; ``says_running``: it yields ``[]`` when
    it starts (else it says nothing until a change comes)."""

    broken = True
    says_running = True
    starts = 0

    async def watch(self, stop: anyio.Event) -> AsyncGenerator[list[Item]]:
        self.starts += 1
        if self.broken:
            raise PermissionError(13, "Permission denied: the asset's watcher")
        if self.says_running:
            yield []  # running again: nothing to submit
        async for items in super().watch(stop):
            yield items


@pytest.mark.parametrize("says_running", [True, False])
async def test_a_failing_watcher_shows_as_not_running_until_it_runs_again(
    fake_core: FakeCore, monkeypatch: pytest.MonkeyPatch, says_running: bool
) -> None:
    """While the watcher kept failing, ``watching`` (``GET /``'s ``monitor.running``) still said it
    ran: monitoring could be off for good with nothing showing it. A watcher started again runs once
    it yields, or once it has run a while without failing."""
    monkeypatch.setattr(runtime_module, "_WATCH_HEALTHY_S", 0.3, raising=False)
    connector = BreakingWatcher(
        MemorySettings(dsx_connect_url=fake_core.url, monitor=True, heartbeat_interval_s=0.2),
        items={"f001.bin": b"x"},
    )
    connector.says_running = says_running
    rt = ConnectorRuntime(connector)
    await rt.start()
    try:
        await until(lambda: connector.starts >= 1, what="the watcher's first start")
        await until(lambda: not rt.watching, what="the failure to show")
        assert rt.watch_error is not None and "Permission denied" in rt.watch_error
        connector.broken = False
        await until(lambda: rt.watching, what="the watcher running again")
        assert rt.watch_error is None
        assert fake_core.requests == []  # its "running again" is not submitted
        connector.push("f001.bin")
        await until(lambda: len(fake_core.requests) == 1, what="a change after the restart")
        connector.broken = True
        await rt.reconfigure({"filter": "*.bin"})  # restarts the watcher: it fails again
        await until(lambda: not rt.watching, what="the failure to show again")
        started = time.monotonic()
    finally:
        await rt.stop()
    assert time.monotonic() - started < 1.5  # a stop during the restart delay does not wait it out


async def test_reconfigure_re_registers_with_the_new_settings(
    fake_core: FakeCore, runtime: ConnectorRuntime
) -> None:
    await until(lambda: runtime.registered)
    await runtime.reconfigure({"filter": "*.pdf", "item_action": "delete"})
    last = fake_core.registrations[-1][1]
    assert last["filter"] == "*.pdf" and last["item_action"] == "delete"
    with pytest.raises(ValueError):
        await runtime.reconfigure({"item_action": "explode"})
    assert runtime.settings.item_action == "delete"


class HookedConnector(MemoryConnector):
    """Each webhook event names one item; its "cursor" moves only after the core took it."""

    committed: int = 0

    async def webhook(self, event: dict[str, Any]) -> WebhookReply:
        async def commit() -> None:
            self.committed += 1

        return WebhookReply(items=[Item("f001.bin", "f001.bin", 1)], after_submit=commit)


async def test_a_webhook_the_core_cannot_take_answers_503_at_once_then_submits_in_the_background(
    fake_core: FakeCore,
) -> None:
    """A storage sender times out in seconds and delivers again (SNS gives up after three tries in a
    minute): the webhook answers 503 within WEBHOOK_SUBMIT_RETRY_S whatever the core does (down,
    refusing, or too slow to answer), moves no cursor, and keeps submitting the items in the
    background; the cursor moves once they are in."""
    settings = MemorySettings(
        dsx_connect_url=fake_core.url,
        heartbeat_interval_s=3600,
        webhook={"verify": False},
        request_timeout_s=30,
    )
    connector = HookedConnector(settings, items={"f001.bin": b"x"})
    app = create_connector_app(connector)
    async with app.router.lifespan_context(app):
        http = httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t")
        url = f"/{settings.name}/webhook/event"
        for down in ("refusing", "stalled"):
            if down == "refusing":
                fake_core.fail_batches = 1_000_000
            else:
                fake_core.batch_answer_s = 6  # one attempt would hold the sender past its timeout
            started = time.monotonic()
            refused = await http.post(url, json={"changed": True})
            assert refused.status_code == 503, refused.text
            assert time.monotonic() - started < WEBHOOK_SUBMIT_RETRY_S + 1.5, down
            assert connector.committed == 0 and fake_core.requests == []
            fake_core.fail_batches, fake_core.batch_answer_s = 0, 0.0
            await until(lambda: connector.committed == 1, timeout=30, what="the late submission")
            assert [r["location"] for r in fake_core.requests] == ["f001.bin"]
            fake_core.batches.clear()
            connector.committed = 0
        taken = await http.post(url, json={"changed": True})
        assert taken.status_code == 200 and taken.json()["submitted"] == 1
        assert connector.committed == 1
        await http.aclose()
