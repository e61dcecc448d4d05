"""Delivery through the forwarder against real receivers: a receiver down while 1,000 results are
produced gets all of them once it is back, exactly once; a full buffer drops the oldest, counted;
a refused event is isolated and set aside; throttling is retried."""

from __future__ import annotations

import base64
import json
import socket
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
import redis

from dsx_connect.notifications.config import NotificationsSettings
from dsx_connect.notifications.sink import WebhookSink
from dsx_connect.settings import Settings
from dsx_connect.state.feed import FeedProducer, destination_states
from dsx_connect.superlog.config import SuperlogSettings
from dsx_connect.superlog.forwarder import Forwarder, ForwarderGroup, backoff_s, build_sink
from tests.dsx_connect.superlog.conftest import fast, make_settings, scan_event, splunk_settings
from tests.dsx_connect.superlog.peers import RSYSLOGD, Certs, Receiver, Rsyslog
from tests.support.emulators import missing
from tests.support.procs import wait_for

pytestmark = pytest.mark.integration


def produce(client: redis.Redis, settings: Settings, first: int, count: int, batch: int = 128) -> None:
    """What the result step does, batch by batch."""
    producer = FeedProducer(client, settings.superlog.active, settings.superlog.buffer_max_events)
    for start in range(first, first + count, batch):
        producer.enqueue(
            [scan_event(n).model_dump_json() for n in range(start, min(start + batch, first + count))]
        )


def hec_ids(receiver: Receiver) -> list[str]:
    return [e["event"]["scan_request_id"] for call in receiver.received("splunk") for e in call["events"]]


@pytest.fixture
def forwarders() -> Iterator[list[ForwarderGroup]]:
    groups: list[ForwarderGroup] = []
    try:
        yield groups
    finally:
        for group in groups:
            group.stop()


def start(groups: list[ForwarderGroup], client: redis.Redis, settings: Settings) -> ForwarderGroup:
    group = ForwarderGroup(client, settings).start()
    groups.append(group)
    return group


@pytest.mark.unit
def test_backoff_grows_to_its_cap_with_jitter() -> None:
    delays = [backoff_s(n, 1.0, 8.0) for n in range(1, 8)]
    assert 0.5 <= delays[0] <= 1.0 and 1.0 <= delays[1] <= 2.0
    assert all(4.0 <= d <= 8.0 for d in delays[4:])


def test_splunk_down_while_1000_results_are_produced_gets_all_once_back(
    hec: Receiver, feed_redis: redis.Redis, forwarders: list[ForwarderGroup]
) -> None:
    settings = make_settings(superlog=fast(destinations="splunk", splunk=splunk_settings(hec)))
    hec.stop()
    start(forwarders, feed_redis, settings)
    produce(feed_redis, settings, 0, 1000)
    wait_for(
        lambda: destination_states(feed_redis, ["splunk"])["splunk"]["status"] == "down",
        timeout=10,
        what="splunk marked down",
    )
    state = destination_states(feed_redis, ["splunk"])["splunk"]
    assert state["backlog"] == 1000 and state["sent"] == 0 and "ConnectError" in state["last_error"]
    hec.start()
    wait_for(lambda: len(hec_ids(hec)) >= 1000, timeout=30, what="1000 events at the HEC receiver")
    got = hec_ids(hec)
    assert sorted(got) == [f"req-{n:05d}" for n in range(1000)]  # all of them, exactly once
    assert got == sorted(got)  # in the order they were produced
    # the receiver records a call before it answers; the forwarder counts it once answered
    state = wait_for(
        lambda: (s := destination_states(feed_redis, ["splunk"])["splunk"])["sent"] == 1000 and s,
        timeout=10,
        what="the last batch acknowledged",
    )
    assert (state["status"], state["sent"], state["backlog"], state["dropped"]) == ("up", 1000, 0, 0)
    calls = hec.received("splunk")
    assert len(calls) >= 2  # batched, not one call per event
    first: Any = calls[0]
    assert first["headers"]["authorization"] == "Splunk hec-0123456789"
    assert first["headers"]["content-type"] == "application/json"
    envelope = first["events"][0]
    assert {k: envelope[k] for k in ("host", "source", "sourcetype", "index")} == {
        "host": "test-host",
        "source": "dsx-connect",
        "sourcetype": "dsxconnect:scan_result",
        "index": "security",
    }
    assert envelope["time"] == 1714564800.0 and envelope["event"] == json.loads(
        scan_event(0).model_dump_json()
    )


def test_a_full_buffer_drops_the_oldest_and_delivers_the_rest(
    hec: Receiver, feed_redis: redis.Redis, forwarders: list[ForwarderGroup]
) -> None:
    settings = make_settings(
        superlog=fast(destinations="splunk", buffer_max_events=300, splunk=splunk_settings(hec))
    )
    produce(feed_redis, settings, 0, 1000)  # nobody forwards yet: the buffer keeps the newest 300
    state = destination_states(feed_redis, ["splunk"])["splunk"]
    assert (state["backlog"], state["dropped"], state["status"]) == (300, 700, "stalled")
    start(forwarders, feed_redis, settings)
    wait_for(lambda: len(hec_ids(hec)) >= 300, timeout=20, what="300 events")
    assert hec_ids(hec) == [f"req-{n:05d}" for n in range(700, 1000)]
    assert destination_states(feed_redis, ["splunk"])["splunk"]["dropped"] == 700


def test_a_refused_event_is_isolated_and_the_others_delivered(
    hec: Receiver, feed_redis: redis.Redis, forwarders: list[ForwarderGroup]
) -> None:
    settings = make_settings(superlog=fast(destinations="splunk", splunk=splunk_settings(hec)))
    hec.control(refuse_marker='"req-00037"')
    produce(feed_redis, settings, 0, 100)
    start(forwarders, feed_redis, settings)
    wait_for(
        lambda: destination_states(feed_redis, ["splunk"])["splunk"]["sent"] == 99, timeout=20, what="99 sent"
    )
    assert hec_ids(hec) == [f"req-{n:05d}" for n in range(100) if n != 37]
    state = destination_states(feed_redis, ["splunk"])["splunk"]
    assert state["rejected"] == 1 and "HTTP 400" in state["last_rejected"]


@pytest.mark.parametrize(
    ("code", "text"),
    [(7, "Incorrect index"), (10, "Data channel is missing"), (14, "ACK is disabled"), (None, "")],
)
def test_a_splunk_400_about_the_destination_keeps_every_event(
    hec: Receiver,
    feed_redis: redis.Redis,
    forwarders: list[ForwarderGroup],
    code: int | None,
    text: str,
) -> None:
    """HEC answers 400 for a wrong index or a missing channel too: those concern every event, so the
    destination is down (retried), never each event set aside; once fixed, every event arrives."""
    settings = make_settings(
        superlog=fast(destinations="splunk", batch_max_events=100, splunk=splunk_settings(hec))
    )
    body = {"text": text, "code": code, "invalid-event-number": 0} if code is not None else {"x": 1}
    hec.control(fail_next=1_000_000, status=400, fail_body=body)
    produce(feed_redis, settings, 0, 100)
    start(forwarders, feed_redis, settings)
    state = wait_for(
        lambda: (s := destination_states(feed_redis, ["splunk"])["splunk"])["status"] == "down" and s,
        timeout=10,
        what="splunk marked down",
    )
    assert "HTTP 400" in state["last_error"] and text in state["last_error"]
    assert (state["rejected"], state["backlog"], state["sent"]) == (0, 100, 0)
    hec.control(fail_next=0)  # the operator fixed the index / the token
    wait_for(
        lambda: destination_states(feed_redis, ["splunk"])["splunk"]["sent"] == 100,
        timeout=20,
        what="100 sent",
    )
    assert hec_ids(hec) == [f"req-{n:05d}" for n in range(100)]
    assert destination_states(feed_redis, ["splunk"])["splunk"]["rejected"] == 0


def test_an_unreadable_or_oversized_event_is_set_aside(
    hec: Receiver, feed_redis: redis.Redis, forwarders: list[ForwarderGroup]
) -> None:
    settings = make_settings(
        superlog=fast(destinations="splunk", splunk=splunk_settings(hec, max_batch_bytes=20_000))
    )
    producer = FeedProducer(feed_redis, ["splunk"], 100)
    producer.enqueue(
        [scan_event(0).model_dump_json(), "not json", scan_event(1, metainfo="x" * 30_000).model_dump_json()]
    )
    produce(feed_redis, settings, 2, 3)
    start(forwarders, feed_redis, settings)
    wait_for(
        lambda: destination_states(feed_redis, ["splunk"])["splunk"]["sent"] == 4, timeout=20, what="4 sent"
    )
    assert hec_ids(hec) == ["req-00000", "req-00002", "req-00003", "req-00004"]
    assert destination_states(feed_redis, ["splunk"])["splunk"]["rejected"] == 2


def test_throttling_is_retried_until_it_passes(
    hec: Receiver, feed_redis: redis.Redis, forwarders: list[ForwarderGroup]
) -> None:
    settings = make_settings(superlog=fast(destinations="splunk", splunk=splunk_settings(hec)))
    hec.control(fail_next=3, status=503, retry_after="0")
    produce(feed_redis, settings, 0, 10)
    start(forwarders, feed_redis, settings)
    wait_for(lambda: len(hec_ids(hec)) >= 10, timeout=20, what="10 events after 3 refusals")
    assert hec_ids(hec) == [f"req-{n:05d}" for n in range(10)]
    state = wait_for(
        lambda: (s := destination_states(feed_redis, ["splunk"])["splunk"])["sent"] == 10 and s,
        timeout=10,
        what="the batch acknowledged",
    )
    assert state["status"] == "up" and state["failures"] == 0 and "HTTP 503" in state["last_error"]


def test_two_forwarders_never_send_an_event_twice(
    hec: Receiver, feed_redis: redis.Redis, forwarders: list[ForwarderGroup]
) -> None:
    settings = make_settings(
        superlog=fast(destinations="splunk", batch_max_events=50, splunk=splunk_settings(hec))
    )
    start(forwarders, feed_redis, settings)
    start(forwarders, feed_redis, settings)
    produce(feed_redis, settings, 0, 600, batch=20)
    wait_for(lambda: len(hec_ids(hec)) >= 600, timeout=30, what="600 events")
    assert sorted(hec_ids(hec)) == [f"req-{n:05d}" for n in range(600)]


def test_a_lock_left_by_an_exited_process_on_this_host_is_taken_over(
    hec: Receiver, feed_redis: redis.Redis
) -> None:
    settings = make_settings(superlog=fast(destinations="splunk", splunk=splunk_settings(hec)))
    produce(feed_redis, settings, 0, 5)
    lock = "dsxc:superlog:splunk:lock"
    feed_redis.set(lock, "elsewhere:1:abcd", px=60_000)  # another host: only its TTL frees it
    forwarder = Forwarder(feed_redis, build_sink("splunk", settings), settings.superlog)
    assert forwarder.step() == 0
    feed_redis.set(lock, f"{socket.gethostname()}:{2**22 + 12345}:abcd", px=60_000)  # no such pid here
    assert forwarder.step() == 5
    forwarder.sink.close()
    assert hec_ids(hec) == [f"req-{n:05d}" for n in range(5)]
    assert feed_redis.get(lock) == forwarder.owner


@pytest.fixture
def own_rsyslog(tmp_path: Path, certs: Certs, logs_dir: Path) -> Iterator[Rsyslog]:
    if RSYSLOGD is None:
        missing("rsyslogd is not installed: apt-get install rsyslog (scripts/deps/apt-packages.txt)")
    server = Rsyslog(tmp_path / "rsyslog", None, logs_dir)
    try:
        yield server
    finally:
        server.stop()


def test_syslog_tcp_down_while_1000_results_are_produced_gets_all_once_back(
    own_rsyslog: Rsyslog, feed_redis: redis.Redis, forwarders: list[ForwarderGroup]
) -> None:
    settings = make_settings(
        syslog={"host": "127.0.0.1", "port": own_rsyslog.ports["tcp"], "format": "json", "hostname": "h"},
        superlog=fast(),
    )
    assert settings.superlog.active == ["syslog"]
    own_rsyslog.start()
    start(forwarders, feed_redis, settings)
    produce(feed_redis, settings, 0, 10)
    own_rsyslog.wait_lines("tcp", 10)
    own_rsyslog.stop()  # the forwarder's open connection is now closed by the collector
    produce(feed_redis, settings, 10, 1000)
    wait_for(
        lambda: destination_states(feed_redis, ["syslog"])["syslog"]["status"] == "down",
        timeout=10,
        what="syslog marked down",
    )
    own_rsyslog.start()
    lines = own_rsyslog.wait_lines("tcp", 1010, timeout=30)
    got = [json.loads(line.split(": ", 1)[1])["scan_request_id"] for line in lines]
    assert got == [f"req-{n:05d}" for n in range(1010)]  # all, once, in order
    assert destination_states(feed_redis, ["syslog"])["syslog"]["sent"] == 1010


class SlowReceiver:
    """A webhook receiver that answers 204 only after ``delay_s``: slower than the forwarder's lock."""

    def __init__(self, delay_s: float) -> None:
        self.ids: list[str] = []
        self.release = threading.Event()  # set at the end: no handler outlives the test
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

            def do_POST(self) -> None:
                self.rfile.read(int(self.headers.get("Content-Length") or 0))
                outer.ids.append(self.headers["webhook-id"])
                outer.release.wait(delay_s)  # the slow part: longer than the lock's TTL
                self.send_response(204)
                self.send_header("Content-Length", "0")
                self.end_headers()

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> SlowReceiver:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.release.set()
        self.server.shutdown()
        self.server.server_close()


WEBHOOK_SECRET = "whsec_" + base64.b64encode(b"a webhook secret of 32 bytes....").decode()


def test_a_receiver_slower_than_the_lock_ttl_gets_each_event_once(feed_redis: redis.Redis) -> None:
    """The lock is renewed while a call is in flight: a 1.5 s answer under a 1 s lock is acknowledged,
    not re-sent forever (the ack used to find the lock expired, and the same event went out again)."""
    with SlowReceiver(delay_s=1.5) as receiver:
        hooks = NotificationsSettings(
            webhooks=[{"url": receiver.url, "secret": WEBHOOK_SECRET}],  # type: ignore[list-item]
            timeout_s=10,
        )
        sink = WebhookSink(hooks.webhooks[0], hooks)
        feed = SuperlogSettings(
            lock_ttl_s=1, flush_interval_s=0.02, retry_backoff_s=0.05, retry_backoff_max_s=0.3
        )
        FeedProducer(feed_redis, [sink.name], 100).enqueue([scan_event(n).model_dump_json() for n in (1, 2)])
        forwarder = Forwarder(feed_redis, sink, feed)
        stop = threading.Event()
        thread = threading.Thread(target=forwarder.run, args=(stop,), daemon=True)
        thread.start()
        try:
            state = wait_for(
                lambda: (s := destination_states(feed_redis, [sink.name])[sink.name])["sent"] == 2 and s,
                timeout=15,
                what="both events acknowledged",
            )
        finally:
            stop.set()
            receiver.release.set()
            thread.join(10)
        assert [i.split(".")[0] for i in receiver.ids] == ["req-00001", "req-00002"]  # each once, in order
        assert (state["backlog"], state["rejected"], state["failures"]) == (0, 0, 0)
