"""CloudWatch Logs against moto's server: group and stream created when allowed, events read back
with boto3 in order; batches within 10,000 events, 1,048,576 bytes (26 per event), 256 KiB per
event and a 24-hour span."""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import boto3
import pytest
import redis

from dsx_connect.state.feed import FeedProducer, destination_states
from dsx_connect.superlog.cloudwatch import CloudWatchSink
from dsx_connect.superlog.config import CloudWatchSettings
from dsx_connect.superlog.forwarder import Forwarder, ForwarderGroup
from dsx_connect.superlog.sink import Record
from shared.errors import RetryableError
from tests.dsx_connect.superlog.conftest import fast, make_settings, scan_event
from tests.support.emulators import Emulator
from tests.support.procs import wait_for


def recent(n: int, **changes: Any) -> str:
    """An event stamped a few minutes ago plus ``n`` ms: CloudWatch keeps only the last 14 days."""
    when = NOW + timedelta(milliseconds=n)
    stamp = when.isoformat(timespec="milliseconds").replace("+00:00", "Z")
    return scan_event(n, timestamp=stamp, **changes).model_dump_json()


NOW = datetime.now(UTC).replace(microsecond=0) - timedelta(minutes=10)


def record(size: int, when: datetime | None = None) -> Record:
    return Record("x" * size, size, when or datetime(2024, 5, 1, tzinfo=UTC))


@pytest.mark.unit
def test_a_call_holds_at_most_10000_events() -> None:
    sink = CloudWatchSink(CloudWatchSettings(log_group="g"))
    assert [len(c) for c in sink.chunks([record(10)] * 25_000)] == [10_000, 10_000, 5_000]


@pytest.mark.unit
def test_a_call_holds_at_most_1048576_bytes_counting_26_per_event() -> None:
    sink = CloudWatchSink(CloudWatchSettings(log_group="g"))
    size = 1_048_576 // 4 - 26  # four of them fill a call exactly
    chunks = list(sink.chunks([record(size)] * 9))
    assert [len(c) for c in chunks] == [4, 4, 1]
    assert all(sum(r.size + 26 for r in c) <= 1_048_576 for c in chunks)


@pytest.mark.unit
def test_an_event_over_256_kib_is_refused_before_sending() -> None:
    sink = CloudWatchSink(CloudWatchSettings(log_group="g"))
    assert not sink.too_large(record(256 * 1024 - 26))
    assert sink.too_large(record(256 * 1024 - 25))


@pytest.mark.unit
def test_a_call_spans_less_than_24_hours() -> None:
    sink = CloudWatchSink(CloudWatchSettings(log_group="g"))
    start = datetime(2024, 5, 1, tzinfo=UTC)
    records = [record(10, start + timedelta(hours=h)) for h in (0, 10, 23, 24, 30, 47, 49)]
    assert [len(c) for c in sink.chunks(records)] == [3, 3, 1]


@pytest.fixture
def logs(moto: Emulator, aws_env: None) -> Iterator[Any]:
    client = boto3.client("logs", region_name="eu-west-1", endpoint_url=moto.endpoint)
    yield client
    client.close()


def cw_settings(moto: Emulator, group: str, **extra: Any) -> dict[str, Any]:
    return {
        "log_group": group,
        "log_stream": "scan-results",
        "region": "eu-west-1",
        "endpoint_url": moto.endpoint,
        **extra,
    }


def read_back(logs: Any, group: str) -> list[dict[str, Any]]:
    answer = logs.get_log_events(
        logGroupName=group, logStreamName="scan-results", startFromHead=True, limit=10_000
    )
    return list(answer["events"])


@pytest.mark.integration
def test_events_are_read_back_in_order_from_a_group_the_sink_created(
    moto: Emulator, logs: Any, feed_redis: redis.Redis
) -> None:
    settings = make_settings(
        superlog=fast(destinations="cloudwatch", cloudwatch=cw_settings(moto, "/dsx/created", create=True))
    )
    # out of order on purpose: each call is sorted chronologically
    events = [recent(n) for n in (3, 1, 2, 0, 4)]
    FeedProducer(feed_redis, ["cloudwatch"], 1000).enqueue(events)
    group = ForwarderGroup(feed_redis, settings).start()
    try:
        wait_for(lambda: len(read_back(logs, "/dsx/created")) >= 5, timeout=20, what="5 events in CloudWatch")
    finally:
        group.stop()
    got = read_back(logs, "/dsx/created")
    assert [json.loads(e["message"])["scan_request_id"] for e in got] == [f"req-{n:05d}" for n in range(5)]
    assert got[0]["timestamp"] == int(NOW.timestamp() * 1000)
    assert json.loads(got[0]["message"]) == json.loads(recent(0))
    assert destination_states(feed_redis, ["cloudwatch"])["cloudwatch"]["sent"] == 5


@pytest.mark.integration
def test_a_missing_group_is_not_created_unless_allowed(
    moto: Emulator, logs: Any, feed_redis: redis.Redis
) -> None:
    sink = CloudWatchSink(CloudWatchSettings(**cw_settings(moto, "/dsx/missing")))
    with pytest.raises(RetryableError, match="ResourceNotFoundException"):
        sink.send([sink.encode(json.loads(recent(1)))])
    logs.create_log_group(logGroupName="/dsx/missing")
    logs.create_log_stream(logGroupName="/dsx/missing", logStreamName="scan-results")
    sink.send([sink.encode(json.loads(recent(1)))])  # the operator created them
    sink.close()
    assert len(read_back(logs, "/dsx/missing")) == 1


@pytest.mark.integration
def test_a_large_backlog_goes_in_calls_within_the_limits(
    moto: Emulator, logs: Any, feed_redis: redis.Redis
) -> None:
    settings = make_settings(
        superlog=fast(
            destinations="cloudwatch",
            batch_max_events=3000,
            cloudwatch=cw_settings(moto, "/dsx/large", create=True),
        )
    )
    big = "m" * 1500  # ~2 KB per event: 3,000 of them need several 1 MiB calls
    FeedProducer(feed_redis, ["cloudwatch"], 10_000).enqueue([recent(n, metainfo=big) for n in range(3000)])
    sink = CloudWatchSink(settings.superlog.cloudwatch)
    calls: list[int] = []
    send = sink.send

    def counted(records: Sequence[Record]) -> int:
        calls.append(len(records))
        return send(records)

    sink.send = counted  # type: ignore[method-assign]
    forwarder = Forwarder(feed_redis, sink, settings.superlog)
    assert forwarder.step() == 3000
    sink.close()
    assert len(calls) >= 6 and sum(calls) == 3000
    got = read_back(logs, "/dsx/large")
    assert [json.loads(e["message"])["scan_request_id"] for e in got] == [f"req-{n:05d}" for n in range(3000)]


@pytest.mark.integration
def test_events_older_than_14_days_are_counted_as_rejected(
    moto: Emulator, logs: Any, feed_redis: redis.Redis
) -> None:
    settings = make_settings(
        superlog=fast(destinations="cloudwatch", cloudwatch=cw_settings(moto, "/dsx/old", create=True))
    )
    old = scan_event(1, timestamp="2024-05-01T12:00:00.000Z").model_dump_json()
    FeedProducer(feed_redis, ["cloudwatch"], 1000).enqueue([old, recent(2)])
    assert Forwarder(feed_redis, CloudWatchSink(settings.superlog.cloudwatch), settings.superlog).step() == 2
    state = destination_states(feed_redis, ["cloudwatch"])["cloudwatch"]
    assert (state["sent"], state["rejected"], state["backlog"]) == (1, 1, 0)
    assert [json.loads(e["message"])["scan_request_id"] for e in read_back(logs, "/dsx/old")] == ["req-00002"]
