"""Sentinel through the Logs Ingestion API: msal's client-credentials token from a local authority,
the DCR stream URL and headers, JSON-array bodies under 1 MB, a refreshed token after a 401."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest
import redis

from dsx_connect.settings import Settings
from dsx_connect.state.feed import FeedProducer, destination_states
from dsx_connect.superlog.config import SentinelSettings
from dsx_connect.superlog.forwarder import ForwarderGroup
from dsx_connect.superlog.sentinel import SentinelSink
from shared.errors import RetryableError
from tests.dsx_connect.superlog.conftest import (
    CLIENT_ID,
    TENANT_ID,
    fast,
    make_settings,
    scan_event,
    sentinel_settings,
)
from tests.dsx_connect.superlog.peers import Receiver
from tests.support.procs import wait_for

pytestmark = pytest.mark.integration


@pytest.fixture
def forwarder_group(hec: Receiver, feed_redis: redis.Redis) -> Iterator[list[ForwarderGroup]]:
    groups: list[ForwarderGroup] = []
    try:
        yield groups
    finally:
        for group in groups:
            group.stop()


def rows(receiver: Receiver) -> list[dict[str, Any]]:
    return [row for call in receiver.received("sentinel") for row in call["rows"]]


def run(groups: list[ForwarderGroup], client: redis.Redis, settings: Settings, events: list[str]) -> None:
    FeedProducer(client, ["sentinel"], 10_000).enqueue(events)
    groups.append(ForwarderGroup(client, settings).start())


def test_events_reach_the_dcr_stream_with_a_token_from_the_authority(
    hec: Receiver, feed_redis: redis.Redis, forwarder_group: list[ForwarderGroup]
) -> None:
    settings = make_settings(superlog=fast(destinations="sentinel", sentinel=sentinel_settings(hec)))
    run(forwarder_group, feed_redis, settings, [scan_event(n).model_dump_json() for n in range(20)])
    wait_for(lambda: len(rows(hec)) >= 20, timeout=20, what="20 rows at the ingestion endpoint")
    got = rows(hec)
    assert [r["scan_request_id"] for r in got] == [f"req-{n:05d}" for n in range(20)]
    assert got[0] == {
        "TimeGenerated": "2024-05-01T12:00:00.000Z",
        **json.loads(scan_event(0).model_dump_json()),
    }
    call: Any = hec.received("sentinel")[0]
    assert call["dcr"] == "dcr-00000000000000000000000000000000"
    assert call["stream"] == "Custom-DsxConnectScanResult"
    assert call["headers"]["content-type"] == "application/json"
    assert call["headers"]["authorization"].startswith("Bearer tok-")
    tokens: Any = hec.received("token")
    assert len(tokens) == 1  # msal keeps the token for the next calls
    assert tokens[0]["tenant"] == TENANT_ID
    assert tokens[0]["form"]["client_id"] == CLIENT_ID
    assert tokens[0]["form"]["grant_type"] == "client_credentials"
    assert tokens[0]["form"]["scope"] == "https://monitor.azure.com//.default"


def test_batches_stay_under_one_megabyte(hec: Receiver) -> None:
    sink = SentinelSink(SentinelSettings(**sentinel_settings(hec)))
    big = [json.loads(scan_event(n, metainfo="x" * 40_000).model_dump_json()) for n in range(60)]
    records = [sink.encode(event) for event in big]
    chunks = list(sink.chunks(records))
    assert len(chunks) >= 3 and sum(len(c) for c in chunks) == 60
    for chunk in chunks:
        sink.send(chunk)
    sink.close()
    calls: Any = hec.received("sentinel")
    assert [len(c["rows"]) for c in calls] == [len(c) for c in chunks]
    assert all(c["bytes"] <= 1_000_000 for c in calls)
    assert [r["scan_request_id"] for c in calls for r in c["rows"]] == [f"req-{n:05d}" for n in range(60)]


def test_a_rejected_token_is_replaced(hec: Receiver) -> None:
    sink = SentinelSink(SentinelSettings(**sentinel_settings(hec)))
    record = sink.encode(json.loads(scan_event(1).model_dump_json()))
    sink.send([record])
    hec.reset()  # the receiver forgets the tokens it issued: the next call answers 401
    with pytest.raises(RetryableError, match="HTTP 401"):
        sink.send([record])
    sink.send([record])  # a fresh token
    sink.close()
    assert len(hec.received("token")) == 1 and len(rows(hec)) == 1


def test_bad_credentials_keep_the_events_and_mark_the_destination_down(
    hec: Receiver, feed_redis: redis.Redis, forwarder_group: list[ForwarderGroup]
) -> None:
    settings = make_settings(
        superlog=fast(destinations="sentinel", sentinel=sentinel_settings(hec, client_secret="wrong"))
    )
    run(forwarder_group, feed_redis, settings, [scan_event(n).model_dump_json() for n in range(3)])
    wait_for(
        lambda: destination_states(feed_redis, ["sentinel"])["sentinel"]["status"] == "down",
        timeout=15,
        what="sentinel marked down",
    )
    state = destination_states(feed_redis, ["sentinel"])["sentinel"]
    assert "invalid_client" in state["last_error"] or "bad credentials" in state["last_error"]
    assert state["backlog"] == 3 and rows(hec) == []


def test_a_sentinel_400_keeps_the_events_and_marks_the_destination_down(
    hec: Receiver, feed_redis: redis.Redis, forwarder_group: list[ForwarderGroup]
) -> None:
    """A 400 of the Logs Ingestion API names a DCR or stream problem (our body is always a JSON array):
    the events wait for the fix, none is set aside."""
    settings = make_settings(superlog=fast(destinations="sentinel", sentinel=sentinel_settings(hec)))
    hec.control(
        fail_next=1_000_000,
        status=400,
        fail_body={"error": {"code": "InvalidStream", "message": "Stream Custom-X is not defined"}},
    )
    run(forwarder_group, feed_redis, settings, [scan_event(n).model_dump_json() for n in range(10)])
    state = wait_for(
        lambda: (s := destination_states(feed_redis, ["sentinel"])["sentinel"])["status"] == "down" and s,
        timeout=15,
        what="sentinel marked down",
    )
    assert "InvalidStream" in state["last_error"]
    assert (state["rejected"], state["backlog"]) == (0, 10)
    hec.control(fail_next=0)
    wait_for(lambda: len(rows(hec)) >= 10, timeout=20, what="10 rows once fixed")
    assert [r["scan_request_id"] for r in rows(hec)] == [f"req-{n:05d}" for n in range(10)]
