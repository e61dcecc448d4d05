"""Change events (scan requests without a job) go to one rolling monitor job per connector, and the
keys of that job expire: nothing per event is kept forever."""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator

import httpx
import pytest
import redis

from dsx_connect import keys
from dsx_connect.jobs.stall import fail_stalled_jobs
from dsx_connect.state.jobs import JobStore
from dsx_connect.state.monitor_jobs import MonitorJobs
from dsx_connect.state.results import ResultStore
from shared.models import EventConnector, ScanResultEvent
from tests.dsx_connect.conftest import Core

pytestmark = pytest.mark.integration

RETAIN_S = 30 * 86400  # the core's default DSXCONNECT_JOBS__RETAIN_S


def connector(name: str) -> dict[str, str]:
    return {"name": name, "uuid": str(uuid.uuid4()), "url": f"http://127.0.0.1:9/{name}", "status": "ready"}


@pytest.fixture(scope="module")
def api(jobs_core: Core) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=jobs_core.api, timeout=10.0) as client:
        yield client


@pytest.fixture
def db(jobs_core: Core) -> Iterator[redis.Redis]:
    """Another database of the same server: the core's stall sweeper never sees it."""
    client = redis.Redis(
        port=jobs_core.redis.connection_pool.connection_kwargs["port"], db=2, decode_responses=True
    )
    client.flushdb()
    yield client
    client.flushdb()
    client.close()


def change_event(owner: dict[str, str], location: str) -> dict[str, object]:
    return {"connector": owner, "location": location, "metainfo": location}


def test_change_events_share_one_monitor_job_per_connector_whose_keys_expire(
    api: httpx.Client, jobs_core: Core
) -> None:
    fs, other = connector("fs"), connector("s3")
    for owner in (fs, other):
        assert api.post("/connectors/register", json=owner).status_code == 201

    singles = [api.post("/scan/request", json=change_event(fs, f"new-{n}.txt")).json() for n in range(4)]
    batch = api.post(
        "/scan/request_batch", json={"requests": [change_event(fs, f"batch-{n}.txt") for n in range(3)]}
    ).json()
    job_ids = {s["job_id"] for s in singles} | {batch["id"]}
    assert len(job_ids) == 1 and None not in job_ids
    (job_id,) = job_ids
    elsewhere = api.post("/scan/request", json=change_event(other, "x.txt")).json()["job_id"]
    assert elsewhere != job_id

    job = api.get(f"/scan/jobs/{job_id}").json()
    assert job["kind"] == "monitor" and job["status"] == "running" and job["enqueued"] == 7
    assert job["connector_uuid"] == fs["uuid"]
    monitors = api.get("/scan/jobs", params={"kind": "monitor"}).json()
    listed = monitors["items"]
    assert sorted(j["job_id"] for j in listed if j["connector_uuid"] == fs["uuid"]) == [job_id]

    r = jobs_core.redis
    for key in (keys.job(job_id), keys.job_pending(job_id), keys.monitor_job(fs["uuid"])):
        assert 0 < r.ttl(key) <= RETAIN_S, key

    request_ids = [s["id"] for s in singles] + batch["ids"]
    events = [
        ScanResultEvent(
            scan_request_id=rid, job_id=job_id, connector=EventConnector(name="fs", uuid=fs["uuid"]),
            location="f", verdict="Benign",
        )
        for rid in request_ids
    ]  # fmt: skip
    ResultStore(r, retain=1000).store_many(events)
    results_index = keys.results_by("job", job_id)
    assert r.zcard(results_index) == 7 and 0 < r.ttl(results_index) <= RETAIN_S
    assert api.get(f"/scan/jobs/{job_id}").json()["status"] == "running"  # waits for the next event


def test_connectors_whose_uuids_differ_only_in_unsafe_characters_get_their_own_monitor_jobs(
    db: redis.Redis,
) -> None:
    """``acme:1111-2222`` was made ``acme-1111-2222``: started in the same second, the second
    connector took over the first's monitor job (its ownership and counters), and the first's next
    change event was refused 403."""
    monitors, jobs = MonitorJobs(db, roll_s=3600, retain_s=RETAIN_S), JobStore(db)
    now = time.time()
    victim = monitors.current("acme-1111-2222", "fs", now=now)
    crafted = monitors.current("acme:1111-2222", "fs", now=now)
    assert crafted != victim
    assert jobs.get(victim)["connector_uuid"] == "acme-1111-2222"  # type: ignore[index]
    assert jobs.get(crafted)["connector_uuid"] == "acme:1111-2222"  # type: ignore[index]
    assert victim.startswith(f"monitor-acme-1111-2222-{int(now)}-")  # uuids that fit keep their ids


def test_a_monitor_job_rolls_over_and_the_old_one_completes(db: redis.Redis) -> None:
    monitors, jobs = MonitorJobs(db, roll_s=3600, retain_s=RETAIN_S), JobStore(db)
    now = time.time()
    first = monitors.current("c1", "fs", now=now)
    assert monitors.current("c1", "fs", now=now + 3599) == first
    db.hset(keys.job(first), mapping={"accepted": 2, "processed": 1})

    second = monitors.current("c1", "fs", now=now + 3600)
    assert second != first
    old = jobs.get(first)
    assert (
        old is not None and old["enqueue_done"] and old["enqueued_total"] == 2 and old["status"] == "running"
    )
    ResultStore(db, retain=100).store_many(
        [
            ScanResultEvent(
                scan_request_id="r1",
                job_id=first,
                connector=EventConnector(uuid="c1"),
                location="a",
                verdict="Benign",
            )
        ]
    )
    assert db.hget(keys.job(first), "status") == "completed"
    assert jobs.get(second)["kind"] == "monitor"  # type: ignore[index]


def test_a_replica_that_read_a_stale_pointer_retries_and_joins_the_job_another_replica_started(
    db: redis.Redis,
) -> None:
    """The script gets its keys as KEYS, so the caller reads the pointer first; when another replica
    moves it in between, the script writes nothing and the caller reads it again."""
    monitors = MonitorJobs(db, roll_s=3600, retain_s=RETAIN_S)
    now = time.time()
    first = monitors.current("c1", "fs", now=now)
    raced = monitors.current("c1", "fs", now=now + 3600)  # another replica rolled it over
    assert raced != first

    script_keys = [keys.monitor_job("c1"), keys.JOBS_ACTIVE, keys.JOBS_INDEX, keys.job("stale-candidate")]
    script_keys += [keys.job(first), keys.job_pending(first), keys.job_due(first)]
    args = [first, "stale-candidate", "now", now + 3600, 3600, RETAIN_S, "c1", "fs"]
    assert monitors._current(keys=script_keys, args=args) is None  # stale: refused, nothing written
    assert not db.exists(keys.job("stale-candidate")) and db.get(keys.monitor_job("c1")) == raced

    calls = {"n": 0}
    real_get = db.get

    def racing_get(name: str) -> object:
        calls["n"] += 1
        value = real_get(name)
        if calls["n"] == 1:  # between this read and the script, another replica starts a new job
            db.set(keys.monitor_job("c1"), "from-another-replica")
            db.hset(keys.job("from-another-replica"), mapping={"status": "running", "created_ts": now + 3600})
        return value

    db.get = racing_get  # type: ignore[method-assign]
    try:
        assert monitors.current("c1", "fs", now=now + 3601) == "from-another-replica"
    finally:
        db.get = real_get  # type: ignore[method-assign]
    assert calls["n"] == 2


def test_a_cancelled_monitor_job_is_replaced_at_the_next_event(db: redis.Redis) -> None:
    monitors, jobs = MonitorJobs(db, roll_s=86400, retain_s=RETAIN_S), JobStore(db)
    first = monitors.current("c1", "fs")
    jobs.transition(first, "cancel")
    second = monitors.current("c1", "fs")
    assert second != first and db.hget(keys.job(second), "status") == "running"
    assert db.hget(keys.job(first), "status") == "cancelled"


def test_an_idle_monitor_job_never_stalls_but_a_stuck_one_fails_and_is_replaced(db: redis.Redis) -> None:
    monitors, jobs = MonitorJobs(db, roll_s=86400, retain_s=RETAIN_S), JobStore(db)
    idle, stuck = monitors.current("idle", "fs"), monitors.current("stuck", "fs")
    db.hset(keys.job(stuck), mapping={"accepted": 3, "processed": 1})
    later = time.time() + 10 * 3600
    assert fail_stalled_jobs(jobs, stall_timeout_s=900, now=later) == [stuck]
    assert db.hget(keys.job(idle), "status") == "running"
    assert monitors.current("stuck", "fs", now=later) != stuck


def test_a_change_event_sent_again_after_a_roll_over_stays_in_the_job_that_accepted_it(
    api: httpx.Client, jobs_core: Core
) -> None:
    """A change event naming its version keeps its id across monitor jobs. Sent again after the job
    rolled over, its copy carried the new job: counted nowhere at intake, its result was counted in
    the new job (processed 1 of 0), and the old job kept its pending item for ever (sent again every
    lease, never completing)."""
    owner = connector("roller")
    assert api.post("/connectors/register", json=owner).status_code == 201
    event = {**change_event(owner, "watch/x.txt"), "item_version": "dev:ino:5:123"}
    first = api.post("/scan/request", json=event).json()
    old_job = first["job_id"]
    jobs_core.redis.hset(keys.job(old_job), "created_ts", time.time() - 3 * 86400)  # due to roll over
    again = api.post("/scan/request", json=event).json()
    assert again["id"] == first["id"] and again["job_id"] == old_job
    other = api.post("/scan/request", json=change_event(owner, "watch/y.txt")).json()
    assert other["job_id"] != old_job  # a new event goes to the new monitor job
    assert jobs_core.redis.hget(keys.job(old_job), "accepted") == "1"
    ResultStore(jobs_core.redis, retain=1000).store_many(
        [
            ScanResultEvent(
                scan_request_id=first["id"], job_id=old_job, connector=EventConnector(uuid=owner["uuid"]),
                location="watch/x.txt", verdict="Benign",
            )
        ]
    )  # fmt: skip
    assert jobs_core.redis.hlen(keys.job_pending(old_job)) == 0
    assert jobs_core.redis.hget(keys.job(old_job), "status") == "completed"
    assert jobs_core.redis.hget(keys.job(other["job_id"]), "processed") in (None, "0")
