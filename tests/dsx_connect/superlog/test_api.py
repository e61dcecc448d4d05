"""What operators see: ``/superlog/stats``, ``/readyz`` naming a destination that is down, the
``dsxconnect_superlog_*`` metrics with the drop count, and ``/config`` with secrets redacted."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
import redis
from fastapi import FastAPI

from dsx_connect.api import health, metrics, superlog
from dsx_connect.api.deps import get_redis, get_settings
from dsx_connect.settings import Settings
from dsx_connect.state.feed import DestinationBuffer, FeedProducer
from dsx_connect.superlog.status import readiness
from tests.dsx_connect.superlog.conftest import fast, make_settings, scan_event, splunk_settings
from tests.dsx_connect.superlog.peers import Receiver

pytestmark = pytest.mark.integration


class Core:
    """The feed's routes and the service routes in-process, with these settings and this Redis."""

    def __init__(self, settings: Settings, client: redis.Redis) -> None:
        self.app = app_with(settings, client)

    def get(self, path: str) -> httpx.Response:
        async def call() -> httpx.Response:
            transport = httpx.ASGITransport(app=self.app)
            async with httpx.AsyncClient(transport=transport, base_url="http://core") as client:
                return await client.get(path)

        return asyncio.run(call())


def app_with(settings: Settings, client: redis.Redis) -> FastAPI:
    app = FastAPI()
    app.include_router(health.probe_router)
    app.include_router(health.router)
    app.include_router(superlog.router)
    app.include_router(metrics.router)
    app.dependency_overrides[get_settings] = lambda: settings
    app.dependency_overrides[get_redis] = lambda: client
    return app


@pytest.fixture
def down_feed(hec: Receiver, feed_redis: redis.Redis) -> Iterator[tuple[Settings, redis.Redis]]:
    """Splunk is down (a failed delivery recorded), syslog dropped events from a full buffer."""
    settings = make_settings(
        syslog={"host": "127.0.0.1", "port": 1},
        superlog=fast(
            destinations="syslog,splunk",
            buffer_max_events=10,
            splunk=splunk_settings(hec, token="very-secret-token"),
        ),
        scanner={"scan_binary_url": f"{hec.url}/scan/binary/v2", "verify_tls": False},  # answers: ready
    )
    FeedProducer(feed_redis, ["syslog", "splunk"], 10).enqueue(
        [scan_event(n).model_dump_json() for n in range(25)]
    )
    buffer = DestinationBuffer(feed_redis, "splunk", 5, 10)
    buffer.hold("forwarder-1")
    buffer.failed("splunk: HTTP 503: server busy")
    yield settings, feed_redis


def test_superlog_stats_show_each_destination(down_feed: tuple[Settings, redis.Redis]) -> None:
    body = Core(*down_feed).get("/superlog/stats").json()
    assert body["enabled"] is True and body["buffer_max_events"] == 10
    assert body["destinations"]["splunk"]["status"] == "down"
    assert body["destinations"]["splunk"]["last_error"] == "splunk: HTTP 503: server busy"
    assert body["destinations"]["syslog"] == body["destinations"]["syslog"] | {
        "status": "stalled",
        "backlog": 10,
        "dropped": 15,
        "enqueued": 25,
    }


def test_readyz_names_the_destination_that_is_down(down_feed: tuple[Settings, redis.Redis]) -> None:
    settings, client = down_feed
    ready = Core(settings, client).get("/readyz")
    assert ready.status_code == 200  # scanning goes on: the events wait in the buffer
    body = ready.json()
    # unauthenticated: the receiver's answer (hosts, versions, token hints) stays on the stats route
    assert body["checks"]["superlog:splunk"] == "down (HTTP 503)" and "server busy" not in ready.text
    assert body["checks"]["superlog:syslog"].startswith("stalled: no forwarder running, 10 events waiting")
    assert body["degraded"] == ["superlog:syslog", "superlog:splunk"] and body["failing"] == []
    settings.superlog.fail_readyz = True
    strict = Core(settings, client).get("/readyz")
    assert strict.status_code == 503 and strict.json()["failing"] == ["superlog:syslog", "superlog:splunk"]


def test_metrics_count_dropped_events_per_destination(down_feed: tuple[Settings, redis.Redis]) -> None:
    text = Core(*down_feed).get("/metrics").text
    assert 'dsxconnect_superlog_dropped_total{destination="syslog"} 15' in text
    assert 'dsxconnect_superlog_dropped_total{destination="splunk"} 15' in text
    assert 'dsxconnect_superlog_up{destination="splunk"} 0' in text
    assert 'dsxconnect_superlog_backlog{destination="syslog"} 10' in text
    assert "# TYPE dsxconnect_superlog_sent_total counter" in text


def test_config_shows_the_destinations_without_their_secrets(down_feed: tuple[Settings, redis.Redis]) -> None:
    body = Core(*down_feed).get("/config")
    assert "very-secret-token" not in body.text
    feed = body.json()["superlog"]
    assert feed["destinations"] == ["syslog", "splunk"]
    assert feed["splunk"]["token"] == "**********" and feed["splunk"]["index"] == "security"
    assert body.json()["syslog"]["host"] == "127.0.0.1"


@pytest.mark.unit
def test_readiness_shows_down_without_the_receivers_text() -> None:
    error = 'splunk: HTTP 403: {"text":"Invalid token","code":4} internal-hec-07.corp.example:8088'
    states: dict[str, dict[str, Any]] = {
        "splunk": {"status": "down", "last_error": error, "backlog": 3},
        "syslog": {
            "status": "down",
            "last_error": "syslog: tcp://10.20.30.40:1: ConnectionRefusedError",
            "backlog": 1,
        },
        "sentinel": {"status": "down", "last_error": None, "backlog": 0},
        "cloudwatch": {"status": "up", "last_error": error, "backlog": 0},
    }
    checks = readiness(states)
    assert checks == {
        "superlog:splunk": "down (HTTP 403)",
        "superlog:syslog": "down",
        "superlog:sentinel": "down",
        "superlog:cloudwatch": "ok",
    }
