"""The per-minute history on a real Redis: counted per minute and verdict, zero-filled, bounded by
expiry; the result step's counting skips items with no action due; queue-wait arithmetic."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
import redis
from prometheus_client import REGISTRY

from dsx_connect import keys
from dsx_connect.metrics.celery_hooks import items_of, queue_wait
from dsx_connect.metrics.instruments import reason_class
from dsx_connect.metrics.results_hook import count_stored
from dsx_connect.metrics.settings import MetricsSettings
from dsx_connect.state import stats_history as history

pytestmark = pytest.mark.integration

T0 = 1_000_000 * 60.0  # a minute long past: nothing else in the session's Redis writes there


@pytest.fixture
def client(redis_url: str) -> redis.Redis:
    return redis.Redis.from_url(redis_url, decode_responses=True)


def events(*verdicts: str) -> list[dict[str, object]]:
    return [{"verdict": v, "action": {"requested": "move", "status": "nothing"}} for v in verdicts]


def test_minutes_are_counted_by_verdict_and_zero_filled(client: redis.Redis) -> None:
    history.record(client, events("Benign", "Benign", "Malicious"), keep_s=3600, now=T0 + 5)
    history.record(client, events("Benign"), keep_s=3600, now=T0 + 59)
    history.record(client, events("Benign"), keep_s=3600, now=T0 + 120)
    got = history.read(client, 4, now=T0 + 150)
    assert got.start == datetime.fromtimestamp(T0 - 60, tz=UTC)
    assert got.total == [0, 4, 0, 1]
    assert got.verdicts == {"Benign": [0, 3, 0, 1], "Malicious": [0, 1, 0, 0]}


def test_each_minute_expires_after_the_hours_kept(client: redis.Redis) -> None:
    history.record(client, events("Benign"), keep_s=7200, now=T0 + 600)
    ttl = client.ttl(keys.stats_minute(int((T0 + 600) // 60)))
    assert 7200 < ttl <= 7200 + 60


def test_an_empty_batch_writes_nothing(client: redis.Redis) -> None:
    history.record(client, [], keep_s=3600, now=T0 + 900)
    assert not client.exists(keys.stats_minute(int((T0 + 900) // 60)))


def test_the_history_route_refuses_more_minutes_than_kept() -> None:
    from fastapi import FastAPI
    from fastapi.testclient import TestClient

    from dsx_connect.api import stats_history
    from dsx_connect.settings import Settings, get_settings

    app = FastAPI()
    app.include_router(stats_history.router)
    app.dependency_overrides[get_settings] = lambda: Settings(metrics=MetricsSettings(history_hours=1))
    answer = TestClient(app).get("/scan/stats/history", params={"minutes": 61})
    assert answer.status_code == 422 and "DSXCONNECT_METRICS__HISTORY_HOURS" in answer.text


def sample(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


def test_counting_a_batch_skips_actions_that_were_not_due(client: redis.Redis) -> None:
    malicious = sample("dsxconnect_verdicts_total", verdict="Malicious")
    moved = sample("dsxconnect_action_outcomes_total", action="move", status="success")
    acted = {"verdict": "Malicious", "action": {"requested": "move", "status": "success"}}
    count_stored(client, MetricsSettings(history=False), [*events("Benign"), acted])
    assert sample("dsxconnect_verdicts_total", verdict="Malicious") == malicious + 1
    assert sample("dsxconnect_action_outcomes_total", action="move", status="success") == moved + 1
    assert (
        REGISTRY.get_sample_value("dsxconnect_action_outcomes_total", {"action": "move", "status": "nothing"})
        is None
    )


def test_queue_wait_starts_when_the_task_is_due() -> None:
    assert queue_wait(100.0, None, now=102.5) == 2.5
    eta = datetime.fromtimestamp(110.0, tz=UTC).isoformat()
    assert queue_wait(100.0, eta, now=111.0) == 1.0  # a countdown is not waiting
    assert queue_wait(None, None, now=1.0) is None  # a message from a publisher without the stamp
    assert items_of(([1, 2, 3],)) == 3 and items_of(("id",)) == 1


def test_dead_letter_reasons_become_a_bounded_label() -> None:
    assert reason_class("gave up after 6 attempts: connector unavailable") == "retries_exhausted"
    assert reason_class("unexpected error in the scan step: KeyError('x')") == "unexpected_error"
    assert reason_class("connector refused (403)") == "other"
