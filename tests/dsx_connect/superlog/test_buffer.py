"""The buffers in a real Redis: one round trip per batch, the bound drops the oldest and counts them,
batches move oldest first, a crashed forwarder's batch is taken over, and only the lock holder acks."""

from __future__ import annotations

import json
from types import SimpleNamespace
from typing import Any

import pytest
import redis

from dsx_connect import keys
from dsx_connect.state.feed import (
    DestinationBuffer,
    FeedProducer,
    FeedTarget,
    LockLost,
    destination_states,
)
from dsx_connect.state.results import ResultStore
from dsx_connect.workers.outcome import ConnectorRef, ItemOutcome
from dsx_connect.workers.results import run_store_batch
from shared.models import DsxaFileInfo, DsxaVerdict, ScanTask
from tests.dsx_connect.superlog.conftest import fast, make_settings, scan_event

pytestmark = pytest.mark.integration

ALL = ["syslog", "splunk", "cloudwatch", "sentinel"]


class CountingConnection(redis.Connection):
    """Counts the writes to the socket: one per round trip (a pipeline or a script call is one)."""

    writes = 0

    def send_packed_command(self, command: Any, check_health: bool = True) -> None:
        CountingConnection.writes += 1
        super().send_packed_command(command, check_health)


def counting_client(feed_redis: redis.Redis) -> redis.Redis:
    kwargs = feed_redis.connection_pool.connection_kwargs
    pool = redis.ConnectionPool(
        connection_class=CountingConnection,
        host=kwargs["host"],
        port=kwargs["port"],
        db=kwargs["db"],
        decode_responses=True,
    )
    return redis.Redis(connection_pool=pool)


def raws(first: int, count: int) -> list[str]:
    return [scan_event(n).model_dump_json() for n in range(first, first + count)]


def ids(items: list[str]) -> list[str]:
    return [json.loads(item)["scan_request_id"] for item in items]


def test_a_batch_costs_one_round_trip_whatever_its_size_and_the_destinations(feed_redis: redis.Redis) -> None:
    client = counting_client(feed_redis)
    producer = FeedProducer(client, ALL, 100_000)
    producer.enqueue(raws(0, 1))  # loads the script, opens the connection
    for size in (1, 128, 1000):
        CountingConnection.writes = 0
        producer.enqueue(raws(0, size))
        assert CountingConnection.writes == 1, size
    assert feed_redis.xlen(keys.superlog("sentinel", "stream")) == 1 + 1 + 128 + 1000
    client.close()


def test_a_full_buffer_drops_the_oldest_and_counts_them(feed_redis: redis.Redis) -> None:
    producer = FeedProducer(feed_redis, ["syslog", "splunk"], 100)
    assert producer.enqueue(raws(0, 60)) == {"syslog": 0, "splunk": 0}
    assert producer.enqueue(raws(60, 90)) == {"syslog": 50, "splunk": 50}
    buffer = DestinationBuffer(feed_redis, "syslog", 5, 10)
    assert buffer.hold("me") == 2
    taken = buffer.take("me", 1000)
    assert ids(taken) == [f"req-{n:05d}" for n in range(50, 150)]  # the newest 100, oldest first
    states = destination_states(feed_redis, ["syslog", "splunk"])
    assert states["syslog"]["dropped"] == 50 and states["splunk"]["dropped"] == 50
    assert states["splunk"]["backlog"] == 100 and states["splunk"]["enqueued"] == 150


def test_batches_leave_oldest_first_and_acks_remove_the_oldest(feed_redis: redis.Redis) -> None:
    FeedProducer(feed_redis, ["splunk"], 1000).enqueue(raws(0, 10))
    buffer = DestinationBuffer(feed_redis, "splunk", 5, 10)
    buffer.hold("me")
    batch = buffer.take("me", 4)
    assert ids(batch) == ["req-00000", "req-00001", "req-00002", "req-00003"]
    buffer.ack("me", 3)
    assert ids(buffer.take("me", 4)) == ["req-00003"]  # the unacknowledged rest comes first
    buffer.ack("me", 1)
    assert ids(buffer.take("me", 4)) == ["req-00004", "req-00005", "req-00006", "req-00007"]
    state = destination_states(feed_redis, ["splunk"])["splunk"]
    assert state["sent"] == 4 and state["status"] == "up" and state["in_flight"] == 4


def test_a_crashed_forwarders_batch_is_sent_by_the_next_one(feed_redis: redis.Redis) -> None:
    FeedProducer(feed_redis, ["syslog"], 1000).enqueue(raws(0, 5))
    crashed = DestinationBuffer(feed_redis, "syslog", 5, 10)
    crashed.hold("crashed")
    assert len(crashed.take("crashed", 3)) == 3
    successor = DestinationBuffer(feed_redis, "syslog", 5, 10)
    assert successor.hold("next") == 0  # the lock is still held
    feed_redis.delete(keys.superlog("syslog", "lock"))  # what its TTL does when the holder is gone
    assert successor.hold("next") == 2
    assert ids(successor.take("next", 3)) == ["req-00000", "req-00001", "req-00002"]
    with pytest.raises(LockLost):
        crashed.ack("crashed", 3)  # a forwarder that lost the lock cannot delete the successor's batch
    successor.ack("next", 3)
    assert ids(successor.take("next", 3)) == ["req-00003", "req-00004"]


def test_a_batch_read_but_not_acked_is_delivered_again_and_acked_ones_never(feed_redis: redis.Redis) -> None:
    """At-least-once through the consumer group: what a forwarder read and did not acknowledge is
    claimed again (XAUTOCLAIM), what it acknowledged is gone from the stream."""
    FeedProducer(feed_redis, ["splunk"], 1000).enqueue(raws(0, 6))
    first = DestinationBuffer(feed_redis, "splunk", 5, 10)
    first.hold("a")
    assert ids(first.take("a", 4)) == ["req-00000", "req-00001", "req-00002", "req-00003"]
    first.ack("a", 2)
    feed_redis.delete(keys.superlog("splunk", "lock"))  # "a" died
    second = DestinationBuffer(feed_redis, "splunk", 5, 10)
    assert second.hold("b") == 2
    assert ids(second.take("b", 4)) == ["req-00002", "req-00003"]  # claimed from "a", not re-read
    second.ack("b", 2)
    assert ids(second.take("b", 4)) == ["req-00004", "req-00005"]
    second.ack("b", 2)
    assert second.take("b", 4) == []
    assert feed_redis.xlen(keys.superlog("splunk", "stream")) == 0
    state = destination_states(feed_redis, ["splunk"])["splunk"]
    assert state["sent"] == 6 and state["backlog"] == 0 and state["in_flight"] == 0


def test_a_list_buffer_of_an_earlier_release_is_moved_into_the_stream_in_order(
    feed_redis: redis.Redis,
) -> None:
    events = raws(0, 5)
    feed_redis.rpush(keys.superlog("syslog", "inflight"), *events[:2])  # the batch being sent, oldest first
    feed_redis.lpush(keys.superlog("syslog", "queue"), *events[2:])  # waiting, newest first
    assert destination_states(feed_redis, ["syslog"])["syslog"]["backlog"] == 3  # the old queue counts
    buffer = DestinationBuffer(feed_redis, "syslog", 5, 10)
    assert buffer.hold("me") == 2
    assert ids(buffer.take("me", 10)) == [f"req-{n:05d}" for n in range(5)]
    assert not feed_redis.exists(keys.superlog("syslog", "queue"), keys.superlog("syslog", "inflight"))


def test_a_refused_event_is_set_aside_with_its_reason(feed_redis: redis.Redis) -> None:
    FeedProducer(feed_redis, ["sentinel"], 1000).enqueue(raws(0, 2))
    buffer = DestinationBuffer(feed_redis, "sentinel", 5, 10)
    buffer.hold("me")
    first, _ = buffer.take("me", 2)
    buffer.reject("me", first, "HTTP 400: bad column")
    assert ids(buffer.take("me", 2)) == ["req-00001"]
    entry = json.loads(feed_redis.lindex(keys.superlog("sentinel", "rejected"), 0))
    assert entry["reason"] == "HTTP 400: bad column" and ids([entry["event"]]) == ["req-00000"]
    assert destination_states(feed_redis, ["sentinel"])["sentinel"]["rejected"] == 1


def test_states_say_stalled_when_events_wait_and_no_forwarder_runs(feed_redis: redis.Redis) -> None:
    FeedProducer(feed_redis, ["cloudwatch"], 1000).enqueue(raws(0, 3))
    assert destination_states(feed_redis, ["cloudwatch"])["cloudwatch"]["status"] == "stalled"
    buffer = DestinationBuffer(feed_redis, "cloudwatch", 5, 10)
    buffer.hold("me")
    assert destination_states(feed_redis, ["cloudwatch"])["cloudwatch"]["status"] == "pending"
    buffer.failed("cloudwatch: ThrottlingException")
    state = destination_states(feed_redis, ["cloudwatch"])["cloudwatch"]
    assert state["status"] == "down" and state["last_error"] == "cloudwatch: ThrottlingException"


def _outcomes(first: int, count: int) -> list[ItemOutcome]:
    return [
        ItemOutcome(
            task=ScanTask(
                id=f"rs-{n}", connector_uuid="c1", location=f"f/{n}.txt", metainfo=f"{n}.txt", job_id="job-b"
            ),
            connector=ConnectorRef(uuid="c1", name="filesystem-connector"),
            verdict=DsxaVerdict(
                verdict="Benign", file_info=DsxaFileInfo(file_type="TEXT", file_size_in_bytes=10)
            ),
        )
        for n in range(first, first + count)
    ]


def test_the_result_step_stores_and_feeds_a_batch_in_one_round_trip(feed_redis: redis.Redis) -> None:
    """Stored and queued for the feed in one Lua call: no crash window between the two; the batch is
    then counted in the per-minute history (docs/metrics.md) in one more: two trips, whatever its size."""
    client = counting_client(feed_redis)
    settings = make_settings(
        superlog=fast(
            destinations="syslog,splunk,cloudwatch,sentinel",
            splunk={"hec_url": "https://splunk.invalid:8088", "token": "t"},
            cloudwatch={"log_group": "g"},
            sentinel={
                "dce_url": "https://dce.invalid",
                "dcr_immutable_id": "dcr-1",
                "tenant_id": "t",
                "client_id": "c",
                "client_secret": "s",
            },
        )
    )
    off = SimpleNamespace(settings=make_settings(), results=ResultStore(client, 100_000), client=client)
    on = SimpleNamespace(
        settings=settings,
        client=client,
        results=ResultStore(client, 100_000, feed=FeedTarget.from_settings(settings.superlog)),
    )
    run_store_batch(on, _outcomes(0, 2))  # type: ignore[arg-type]  # warm: scripts loaded, connection open
    run_store_batch(off, _outcomes(2, 2))  # type: ignore[arg-type]
    for rnd in range(5):
        for name, ctx in (("off", off), ("on", on)):
            items = _outcomes(1000 + rnd * 1000 + (0 if name == "off" else 500), 128)
            CountingConnection.writes = 0
            assert len(run_store_batch(ctx, items)) == 128  # type: ignore[arg-type]
            assert CountingConnection.writes == 2, name
    # a redelivered batch is stored once and fed once
    assert run_store_batch(on, _outcomes(0, 2)) == []  # type: ignore[arg-type]
    for destination in ALL:
        queued = ids([fields["e"] for _, fields in feed_redis.xrange(keys.superlog(destination, "stream"))])
        assert len(queued) == len(set(queued)) == 2 + 5 * 128
    client.close()
