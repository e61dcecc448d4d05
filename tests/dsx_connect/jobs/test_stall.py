"""Stall detection: a job without progress fails with a reason, never stays running forever.

The core under test sweeps every 2.5 s (``DSXCONNECT_JOBS__STALL_TIMEOUT_S=10``). Instead of waiting
ten seconds, a test moves a job's last progress into the past: the same thing, sooner.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator

import httpx
import pytest
import redis

from dsx_connect import keys
from dsx_connect.jobs.stall import fail_stalled_jobs, sweep_interval_s
from dsx_connect.state.jobs import JobStore
from dsx_connect.state.results import ResultStore
from shared.models import EventConnector, ScanResultEvent
from tests.dsx_connect.conftest import Core
from tests.dsx_connect.jobs.conftest import STALL_TIMEOUT_S
from tests.support.procs import wait_for

pytestmark = pytest.mark.integration

CONNECTOR = {"name": "fs", "uuid": str(uuid.uuid4()), "url": "http://127.0.0.1:9/fs", "status": "ready"}


@pytest.fixture(scope="module")
def api(jobs_core: Core) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=jobs_core.api, timeout=10.0) as client:
        assert client.post("/connectors/register", json=CONNECTOR).status_code == 201
        yield client


@pytest.fixture
def store(jobs_core: Core) -> Iterator[JobStore]:
    """A job store on another database of the same server: the core's sweeper never sees it."""
    client = redis.Redis(
        port=jobs_core.redis.connection_pool.connection_kwargs["port"], db=1, decode_responses=True
    )
    client.flushdb()
    yield JobStore(client)
    client.flushdb()
    client.close()


def running_job(api: httpx.Client, core: Core, *, outstanding: bool) -> str:
    """A running job with one accepted item, scanned unless ``outstanding``; enumeration not reported."""
    job_id = uuid.uuid4().hex
    request = {
        "connector": CONNECTOR,
        "location": "a",
        "metainfo": "a",
        "scan_job_id": job_id,
        "job_item_id": "1",
    }
    (request_id,) = api.post("/scan/request_batch", json={"requests": [request]}).json()["ids"]
    if not outstanding:
        event = ScanResultEvent(
            scan_request_id=request_id, job_id=job_id, connector=EventConnector(uuid=CONNECTOR["uuid"]),
            location="a", verdict="Benign",
        )  # fmt: skip
        ResultStore(core.redis, retain=1000).store_many([event])
    return job_id


def age(core: Core, job_ids: list[str], seconds: float) -> None:
    """Move the last progress of ``job_ids`` ``seconds`` into the past, all at once."""
    then = time.time() - seconds
    pipe = core.redis.pipeline(transaction=True)
    for job_id in job_ids:
        pipe.hset(keys.job(job_id), mapping={"last_update_ts": then, "created_ts": then})
    pipe.execute()


def status(core: Core, job_id: str) -> str:
    """Read from Redis, not through the API: the sweep must work when nobody reads the job."""
    return str(core.redis.hget(keys.job(job_id), "status"))


def test_stalled_jobs_fail_with_a_reason_while_nobody_reads_them(api: httpx.Client, jobs_core: Core) -> None:
    finished_items = running_job(api, jobs_core, outstanding=False)  # the connector vanished mid-enumeration
    queued_behind = running_job(api, jobs_core, outstanding=True)  # waits while another job progresses
    progressing = running_job(api, jobs_core, outstanding=True)
    paused = running_job(api, jobs_core, outstanding=True)
    api.post(f"/scan/jobs/{paused}/pause")

    age(jobs_core, [finished_items, queued_behind, paused], STALL_TIMEOUT_S + 5)
    wait_for(
        lambda: status(jobs_core, finished_items) == "failed", timeout=3 * sweep_interval_s(STALL_TIMEOUT_S)
    )

    assert [status(jobs_core, j) for j in (queued_behind, progressing, paused)] == [
        "running",
        "running",
        "paused",
    ]
    reason = jobs_core.redis.hget(keys.job(finished_items), "failure_reason") or ""
    assert reason.startswith("stalled: no progress for") and "never reported the end of enumeration" in reason

    age(jobs_core, [progressing], STALL_TIMEOUT_S + 5)  # now the whole pipeline is still
    wait_for(
        lambda: status(jobs_core, queued_behind) == "failed", timeout=3 * sweep_interval_s(STALL_TIMEOUT_S)
    )
    wait_for(
        lambda: status(jobs_core, progressing) == "failed", timeout=3 * sweep_interval_s(STALL_TIMEOUT_S)
    )

    job = api.get(f"/scan/jobs/{queued_behind}").json()
    assert job["stalled"] is True and job["finished"] is not None
    assert "with 1 items not scanned" in job["failure_reason"]
    assert status(jobs_core, paused) == "paused"  # a paused job waits for its operator, however long
    # failed, its accepted item is still swept (sent again when its lease passes) until it has an
    # outcome; then the job leaves the active set
    assert queued_behind in jobs_core.redis.smembers(keys.JOBS_ACTIVE)
    (request_id,) = jobs_core.redis.hkeys(keys.job_pending(queued_behind))
    event = ScanResultEvent(
        scan_request_id=request_id, job_id=queued_behind, connector=EventConnector(uuid=CONNECTOR["uuid"]),
        location="a", verdict="Benign",
    )  # fmt: skip
    ResultStore(jobs_core.redis, retain=1000).store_many([event])
    wait_for(
        lambda: queued_behind not in jobs_core.redis.smembers(keys.JOBS_ACTIVE),
        timeout=3 * sweep_interval_s(STALL_TIMEOUT_S),
    )


def test_a_sweep_fails_a_stalled_job_once_across_replicas(store: JobStore) -> None:
    job_id = store.create("c1", "fs")
    later = time.time() + 3600

    first = fail_stalled_jobs(store, STALL_TIMEOUT_S, now=later)
    second = fail_stalled_jobs(store, STALL_TIMEOUT_S, now=later)  # another API replica, same moment

    assert (first, second) == ([job_id], [])
    assert store.get(job_id)["status"] == "failed"  # type: ignore[index]


def test_a_job_that_progressed_after_the_sweep_read_it_is_not_failed(store: JobStore) -> None:
    job_id = store.create("c1", "fs")
    cutoff = time.time() - STALL_TIMEOUT_S  # what the sweep computed ...
    store.redis.hset(keys.job(job_id), "last_update_ts", time.time())  # ... before a result landed

    assert store.fail(job_id, "stalled", idle_since=cutoff) is False
    assert store.get(job_id)["status"] == "running"  # type: ignore[index]


def test_finished_jobs_leave_the_active_set_and_fresh_ones_stay_running(store: JobStore) -> None:
    fresh, done = store.create("c1"), store.create("c1")
    store.redis.hset(keys.job(done), "status", "completed")  # as the result script completes a job

    assert fail_stalled_jobs(store, STALL_TIMEOUT_S) == []

    assert store.active_ids() == [fresh]
    assert store.get(fresh)["status"] == "running"  # type: ignore[index]
