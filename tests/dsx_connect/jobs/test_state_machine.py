"""Job control through the API against a real core and Redis: every transition, allowed or not (SPEC §6)."""

from __future__ import annotations

import itertools
import json
import uuid
from collections.abc import Iterator

import httpx
import pytest

from dsx_connect import keys
from dsx_connect.state.results import ResultStore
from shared.models import EventConnector, ScanResultEvent
from tests.dsx_connect.conftest import Core
from tests.support.procs import wait_for

pytestmark = pytest.mark.integration

STATUSES = ("running", "paused", "cancelled", "completed", "failed")
ACTIONS = ("pause", "resume", "cancel")
ALLOWED = {
    ("running", "pause"): "paused",
    ("running", "cancel"): "cancelled",
    ("paused", "resume"): "running",
    ("paused", "cancel"): "cancelled",
}


@pytest.fixture(scope="module")
def api(jobs_core: Core) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=jobs_core.api, timeout=10.0) as client:
        yield client


@pytest.fixture(scope="module")
def connector(api: httpx.Client) -> dict[str, object]:
    body = {
        "name": "filesystem-connector", "uuid": str(uuid.uuid4()), "url": "http://127.0.0.1:9/filesystem-connector",
        "asset": "/data", "status": "ready",
    }  # fmt: skip
    assert api.post("/connectors/register", json=body).status_code == 201
    return body


def submit(
    api: httpx.Client, connector: dict[str, object], job_id: str, count: int = 1, first: int = 1
) -> list[str]:
    requests = [
        {"connector": connector, "location": f"f{n}.txt", "metainfo": f"f{n}.txt", "scan_job_id": job_id,
         "job_item_id": str(n)}
        for n in range(first, first + count)
    ]  # fmt: skip
    response = api.post("/scan/request_batch", json={"requests": requests})
    assert response.status_code == 202, response.text
    return list(response.json()["ids"])


def store_results(core: Core, connector: dict[str, object], job_id: str, request_ids: list[str]) -> None:
    """What the result worker does for these requests (no workers run in these tests)."""
    events = [
        ScanResultEvent(
            scan_request_id=rid, job_id=job_id, connector=EventConnector(name="fs", uuid=str(connector["uuid"])),
            location=f"{rid}.txt", verdict="Benign",
        )
        for rid in request_ids
    ]  # fmt: skip
    ResultStore(core.redis, retain=10_000).store_many(events)


def job_in(status: str, api: httpx.Client, core: Core, connector: dict[str, object]) -> str:
    """A job brought into ``status`` through the public paths (plus the result store for completion)."""
    job_id = uuid.uuid4().hex
    ids = submit(api, connector, job_id)
    if status == "paused":
        assert api.post(f"/scan/jobs/{job_id}/pause").status_code == 200
    elif status == "cancelled":
        assert api.post(f"/scan/jobs/{job_id}/cancel").status_code == 200
    elif status == "completed":
        store_results(core, connector, job_id, ids)
        assert api.post(f"/scan/jobs/{job_id}/enqueue_done", json={"enqueued_total": 1}).status_code == 200
    elif status == "failed":
        body = {"enqueued_total": 1, "status": "failed", "error": "bucket vanished"}
        assert api.post(f"/scan/jobs/{job_id}/enqueue_done", json=body).status_code == 200
    assert api.get(f"/scan/jobs/{job_id}").json()["status"] == status
    return job_id


@pytest.mark.parametrize(("status", "action"), list(itertools.product(STATUSES, ACTIONS)))
def test_each_control_is_allowed_or_answers_409_with_the_current_status(
    api: httpx.Client, jobs_core: Core, connector: dict[str, object], status: str, action: str
) -> None:
    job_id = job_in(status, api, jobs_core, connector)

    response = api.post(f"/scan/jobs/{job_id}/{action}")

    after = api.get(f"/scan/jobs/{job_id}").json()
    if (status, action) in ALLOWED:
        assert response.status_code == 200, response.text
        assert response.json()["previous_status"] == status
        assert after["status"] == response.json()["job"]["status"] == ALLOWED[status, action]
    else:
        assert response.status_code == 409, response.text
        body = response.json()
        assert body["job_status"] == status and body["status"] == "error"
        assert f"cannot {action} job {job_id}: it is {status}" == body["message"]
        assert after["status"] == status  # unchanged


def test_pause_resume_and_cancel_set_the_flags_workers_and_connectors_read(
    api: httpx.Client, jobs_core: Core, connector: dict[str, object]
) -> None:
    job_id = job_in("running", api, jobs_core, connector)

    def flags() -> tuple[str | None, str | None]:
        data = api.get(f"/scan/jobs/{job_id}/raw").json()["data"]
        return data.get("paused"), data.get("cancel")

    api.post(f"/scan/jobs/{job_id}/pause")
    assert flags() == ("1", None)
    api.post(f"/scan/jobs/{job_id}/resume")
    assert flags() == ("0", None)
    api.post(f"/scan/jobs/{job_id}/pause")
    api.post(f"/scan/jobs/{job_id}/cancel")
    assert flags() == ("0", "1")


def test_cancel_says_how_many_were_skipped_and_how_many_are_not_yet_scanned(
    api: httpx.Client, jobs_core: Core, connector: dict[str, object]
) -> None:
    job_id = uuid.uuid4().hex
    ids = submit(api, connector, job_id, count=10)
    store_results(jobs_core, connector, job_id, ids[:3])
    api.post(f"/scan/jobs/{job_id}/enqueue_done", json={"enqueued_total": 10})

    response = api.post(f"/scan/jobs/{job_id}/cancel")

    body = response.json()
    assert response.status_code == 200
    assert (body["processed"], body["skipped"], body["not_yet_scanned"]) == (3, 0, 7)
    assert "3 items scanned, 0 skipped so far; 7 not yet scanned will be skipped" in body["message"]
    jobs_core.redis.hincrby(keys.job(job_id), "skipped", 7)  # what the scan worker counts as it reaches them
    job = api.get(f"/scan/jobs/{job_id}").json()
    assert (job["status"], job["skipped"], job["not_yet_scanned"]) == ("cancelled", 7, 0)


def test_control_of_an_unknown_job_is_404(api: httpx.Client) -> None:
    for action in ACTIONS:
        response = api.post(f"/scan/jobs/no-such-job/{action}")
        assert response.status_code == 404 and "no-such-job" in response.json()["message"]


def test_a_failed_enumeration_fails_the_job_with_the_reason_and_items_still_count(
    api: httpx.Client, jobs_core: Core, connector: dict[str, object]
) -> None:
    job_id = uuid.uuid4().hex
    ids = submit(api, connector, job_id, count=4)
    body = {"enqueued_total": 4, "status": "failed", "error": "listing the bucket: AccessDenied"}

    assert api.post(f"/scan/jobs/{job_id}/enqueue_done", json=body).status_code == 200
    store_results(jobs_core, connector, job_id, ids)  # what was submitted is still scanned

    job = api.get(f"/scan/jobs/{job_id}").json()
    assert job["status"] == "failed"
    assert job["failure_reason"] == "enumeration failed: listing the bucket: AccessDenied"
    assert (job["enqueued_total"], job["processed"], job["finished"] is not None) == (4, 4, True)


def test_a_failure_report_does_not_reopen_a_cancelled_job(
    api: httpx.Client, jobs_core: Core, connector: dict[str, object]
) -> None:
    job_id = job_in("cancelled", api, jobs_core, connector)
    body = {"enqueued_total": 1, "status": "failed", "error": "stopped"}

    assert api.post(f"/scan/jobs/{job_id}/enqueue_done", json=body).status_code == 200

    job = api.get(f"/scan/jobs/{job_id}").json()
    assert (job["status"], job["failure_reason"], job["enqueued_total"]) == ("cancelled", None, 1)


def test_a_resubmitted_batch_is_counted_once(
    api: httpx.Client, jobs_core: Core, connector: dict[str, object]
) -> None:
    job_id = uuid.uuid4().hex
    first = submit(api, connector, job_id, count=5)
    store_results(jobs_core, connector, job_id, first[:2])  # two already have a result (state deleted)

    again = submit(api, connector, job_id, count=5)  # the connector's answer was lost: it resubmits

    assert again == first
    job = api.get(f"/scan/jobs/{job_id}").json()
    assert (job["enqueued"], job["processed"]) == (5, 2)


def test_every_control_change_is_published_on_the_job_channel(
    api: httpx.Client, jobs_core: Core, connector: dict[str, object]
) -> None:
    job_id = job_in("running", api, jobs_core, connector)
    pubsub = jobs_core.redis.pubsub(ignore_subscribe_messages=True)
    pubsub.subscribe(keys.channel_job(job_id))
    wait_for(lambda: pubsub.get_message(timeout=0.1) is None and pubsub.subscribed, timeout=5)
    seen: list[dict[str, object]] = []

    for action in ("pause", "resume", "cancel"):
        api.post(f"/scan/jobs/{job_id}/{action}")
        message = wait_for(lambda: pubsub.get_message(timeout=0.5), timeout=5, what=f"{action} published")
        seen.append(json.loads(message["data"]))  # type: ignore[index]
    pubsub.close()

    assert [m["status"] for m in seen] == ["paused", "running", "cancelled"]
    revs = [int(m["rev"]) for m in seen]  # type: ignore[call-overload]
    assert revs == sorted(revs) and len(set(revs)) == 3


def test_jobs_are_listed_newest_first_and_filtered_by_status_and_kind(
    api: httpx.Client, jobs_core: Core, connector: dict[str, object]
) -> None:
    paused = job_in("paused", api, jobs_core, connector)
    running = job_in("running", api, jobs_core, connector)
    completed = job_in("completed", api, jobs_core, connector)

    everything = api.get("/scan/jobs", params={"limit": 500}).json()
    active = api.get("/scan/jobs", params={"status": ["running", "paused"], "limit": 500}).json()
    done = api.get("/scan/jobs", params={"status": "completed", "kind": "full_scan", "limit": 500}).json()
    page = api.get("/scan/jobs", params={"limit": 2, "offset": 1}).json()

    created = [j["created"] for j in everything["items"]]
    assert created == sorted(created, reverse=True) and everything["total"] == len(everything["items"])
    assert {j["status"] for j in active["items"]} <= {"running", "paused"}
    ids = [j["job_id"] for j in active["items"]]
    assert ids.index(running) < ids.index(paused) and completed not in ids
    assert active["total"] == len(active["items"])
    assert completed in [j["job_id"] for j in done["items"]]
    assert [j["job_id"] for j in page["items"]] == [j["job_id"] for j in everything["items"][1:3]]


def test_a_job_the_connector_names_but_never_created_shows_up_running(
    api: httpx.Client, jobs_core: Core, connector: dict[str, object]
) -> None:
    job_id = uuid.uuid4().hex
    submit(api, connector, job_id, count=2)

    assert job_id in jobs_core.redis.smembers(keys.JOBS_ACTIVE)
    job = api.get(f"/scan/jobs/{job_id}").json()
    assert (job["status"], job["enqueued"], job["enqueued_total"], job["not_yet_scanned"]) == (
        "running",
        2,
        None,
        2,
    )
