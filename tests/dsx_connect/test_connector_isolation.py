"""One connector cannot reach into another's change events or monitor jobs, against a real Redis
(the intake and the stores, without the HTTP layer; tests/security covers the routes; stored state:
test_connector_state.py)."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import pytest
import redis

from dsx_connect import intake, keys
from dsx_connect.settings import Settings
from dsx_connect.state.connectors import ConnectorRegistry
from dsx_connect.state.jobs import JobStore
from dsx_connect.state.monitor_jobs import MonitorJobs
from shared.models import ConnectorInstance, ScanRequest
from tests.support.redis_db import flushed_db

pytestmark = pytest.mark.integration

RETAIN_S = 30 * 86400


@pytest.fixture
def db(redis_url: str) -> Iterator[redis.Redis]:
    with flushed_db(redis_url, 14) as conn:
        yield conn


def accept(db: redis.Redis, requests: list[ScanRequest]) -> list[Any]:
    published: list[Any] = []
    tasks = intake.accept(
        requests,
        registry=ConnectorRegistry(db, ttl_s=600),
        jobs=JobStore(db, RETAIN_S),
        client=db,
        settings=Settings(),
        publish=published.extend,
    )
    assert len(published) == len(tasks)
    return tasks


def event(owner: ConnectorInstance, location: str) -> ScanRequest:
    return ScanRequest(connector=owner, location=location, metainfo=location, item_version="v1")


# ---- change event ids (finding: a request id shared across connectors) -------------------------


def test_an_event_id_another_connector_used_first_is_a_request_of_its_own_not_a_403(
    db: redis.Redis, monkeypatch: pytest.MonkeyPatch
) -> None:
    """However two connectors' events came to share an id, the first one's monitor job was taken for
    the second's (``jobs_of_requests``): its whole batch was refused 403 (``ForeignJob``) and its
    connector gave up on it, so the item was never scanned. The ids now differ (test_intake.py); the
    intake also joins an earlier job only when it is the connector's own."""
    registry = ConnectorRegistry(db, ttl_s=600)
    attacker, victim = (
        ConnectorInstance(name="a", uuid="attacker"),
        ConnectorInstance(name="v", uuid="victim"),
    )
    registry.register(attacker)
    registry.register(victim)
    # an id shared by the two: what the unframed hash gave ``B:evil`` + ``x`` and ``B`` + ``evil:x``
    monkeypatch.setattr(intake, "change_event_id", lambda uuid, req: "0" * 32)

    (first,) = accept(db, [event(attacker, "payload.exe")])
    (second,) = accept(db, [event(victim, "payload.exe")])

    assert first.job_id != second.job_id and second.id != first.id
    assert JobStore(db).get(second.job_id)["connector_uuid"] == "victim"  # type: ignore[index]
    assert db.hexists(keys.job_pending(second.job_id), second.id)  # it will be scanned
    (again,) = accept(db, [event(attacker, "payload.exe")])  # the attacker's own resubmit: its job
    assert again.job_id == first.job_id and again.id == first.id


def test_a_change_event_resubmitted_joins_the_job_that_accepted_it(db: redis.Redis) -> None:
    registry = ConnectorRegistry(db, ttl_s=600)
    owner = ConnectorInstance(name="fs", uuid="fs-1")
    registry.register(owner)
    (first,) = accept(db, [event(owner, "a.txt")])
    (again,) = accept(db, [event(owner, "a.txt")])
    assert (again.id, again.job_id) == (first.id, first.job_id)


# ---- monitor job ids (finding: predictable, and written over) -----------------------------------


def test_a_job_made_ahead_under_a_monitor_jobs_name_is_never_rolled_into(db: redis.Redis) -> None:
    """The id was ``monitor-<uuid>-<unix seconds>``: connector A created ``monitor-B-<T>`` for the
    coming seconds (a scan request naming it); when B's monitor job rolled over at T, the script
    wrote B's job over A's (A's items then counted and reported in B's job)."""
    jobs = JobStore(db, RETAIN_S)
    now = time.time()
    planted = f"monitor-victim-{int(now)}"
    jobs.create("attacker", "a", job_id=planted)
    db.hset(keys.job(planted), "accepted", 5)

    current = MonitorJobs(db, roll_s=3600, retain_s=RETAIN_S).current("victim", "v", now=now)

    assert current != planted and current.startswith(f"monitor-victim-{int(now)}-")
    assert jobs.get(planted)["connector_uuid"] == "attacker"  # type: ignore[index]
    assert jobs.get(current)["connector_uuid"] == "victim"  # type: ignore[index]
    assert jobs.get(current)["enqueued"] == 0 and jobs.get(planted)["enqueued"] == 5  # type: ignore[index]


def test_the_monitor_script_refuses_a_candidate_that_exists(
    db: redis.Redis, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Even a guessed id (here: the next candidate, forced) is never written over: another is drawn."""
    from dsx_connect.state import monitor_jobs

    jobs = JobStore(db, RETAIN_S)
    jobs.create("attacker", "a", job_id="monitor-victim-1-aaaa")
    drawn = iter(["monitor-victim-1-aaaa", "monitor-victim-1-bbbb"])
    monkeypatch.setattr(monitor_jobs, "monitor_job_id", lambda uuid, now: next(drawn))
    assert MonitorJobs(db, roll_s=3600, retain_s=RETAIN_S).current("victim") == "monitor-victim-1-bbbb"
    assert jobs.get("monitor-victim-1-aaaa")["connector_uuid"] == "attacker"  # type: ignore[index]


def test_a_scan_request_may_not_name_a_monitor_job(db: redis.Redis) -> None:
    registry = ConnectorRegistry(db, ttl_s=600)
    owner = ConnectorInstance(name="a", uuid="attacker")
    registry.register(owner)
    planted = ScanRequest(
        connector=owner, location="x", metainfo="x", scan_job_id=f"monitor-victim-{int(time.time())}"
    )
    with pytest.raises(ValueError, match="scan_job_id") as refused:
        accept(db, [planted])
    assert refused.type.__name__ == "ReservedJobId"  # answered 400 by the route
    assert db.zcard(keys.JOBS_INDEX) == 0
