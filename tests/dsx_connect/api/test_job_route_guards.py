"""What a connector may tell the core about jobs, and what deleting dead letters takes, against a real
core with auth on: a count past any real one is refused, a monitor job's end is the core's alone, a
job's status is shown to its own connector only, and a misspelt filter on a 1.x clear deletes nothing.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from pydantic import ValidationError

from dsx_connect import keys
from dsx_connect.api.jobs import EnqueueDone
from dsx_connect.state.dead_letters import DeadLetter, DeadLetterStore
from dsx_connect.state.jobs import job_view
from dsx_connect.state.monitor_jobs import ID_PREFIX
from shared.models import MAX_REPORTED_SIZE, EstimateResponse
from tests.dsx_connect.conftest import Core
from tests.support.auth import connector_signer

pytestmark = pytest.mark.integration

HUGE = 10**400  # past a float: ``remaining / throughput`` raised OverflowError


@pytest.fixture
def api(core: Core) -> Iterator[httpx.Client]:
    with core.client() as client:
        yield client


def enroll(api: httpx.Client, name: str) -> tuple[dict[str, Any], httpx.Client]:
    """A registered connector's body, and a client that signs as it."""
    body = {"name": name, "uuid": str(uuid.uuid4()), "url": f"http://127.0.0.1:9/{name}", "status": "ready"}
    answer = api.post("/connectors/register", json=body)
    assert answer.status_code == 201, answer.text
    return body, httpx.Client(base_url=str(api.base_url), auth=connector_signer(answer.json()), timeout=10)


@pytest.fixture
def alice(api: httpx.Client) -> Iterator[tuple[dict[str, Any], httpx.Client]]:
    body, client = enroll(api, "alice-connector")
    with client:
        yield body, client


@pytest.fixture
def bob(api: httpx.Client) -> Iterator[tuple[dict[str, Any], httpx.Client]]:
    body, client = enroll(api, "bob-connector")
    with client:
        yield body, client


def submit(client: httpx.Client, owner: dict[str, Any], location: str, **extra: Any) -> str:
    """The job a scan request joined (a change event joins its connector's monitor job)."""
    answer = client.post(
        "/scan/request", json={"connector": owner, "location": location, "metainfo": location, **extra}
    )
    assert answer.status_code == 202, answer.text
    return str(answer.json()["job_id"])


# ---- finding: counts past any real one ----------------------------------------------------------


@pytest.mark.unit
def test_a_stored_count_past_a_float_still_gives_a_job_view() -> None:
    now = time.time()
    base = {"job_id": "j", "status": "running", "processed": "5", "started_ts": str(now - 10),
            "last_update_ts": str(now)}  # fmt: skip
    reported = job_view({**base, "enqueue_done": "1", "reported_total": str(HUGE)})
    estimated = job_view({**base, "estimate_count": str(HUGE), "estimate_bytes": str(HUGE)})
    for view in (reported, estimated):
        assert view["eta_s"] is not None and view["eta_s"] < float("inf")
    assert reported["enqueued_total"] == MAX_REPORTED_SIZE
    assert estimated["estimate"] == {
        "count": MAX_REPORTED_SIZE,
        "bytes": MAX_REPORTED_SIZE,
        "confidence": "unknown",
    }


@pytest.mark.unit
def test_the_models_refuse_a_count_past_the_largest_reported_size() -> None:
    assert EnqueueDone(enqueued_total=MAX_REPORTED_SIZE).enqueued_total == MAX_REPORTED_SIZE
    assert EstimateResponse(count=MAX_REPORTED_SIZE, bytes=MAX_REPORTED_SIZE).count == MAX_REPORTED_SIZE
    for refused in (
        lambda: EnqueueDone(enqueued_total=MAX_REPORTED_SIZE + 1),
        lambda: EstimateResponse(count=HUGE),
        lambda: EstimateResponse(bytes=MAX_REPORTED_SIZE + 1),
    ):
        with pytest.raises(ValidationError):
            refused()


def test_enqueue_done_refuses_a_total_past_the_largest_reported_size(
    api: httpx.Client, alice: tuple[dict[str, Any], httpx.Client]
) -> None:
    owner, client = alice
    job_id = submit(client, owner, "a.txt", scan_job_id=uuid.uuid4().hex, job_item_id="1")
    refused = client.post(
        f"/scan/jobs/{job_id}/enqueue_done",
        content=b'{"enqueued_total": 1' + b"0" * 400 + b"}",
        headers={"content-type": "application/json"},
    )
    assert refused.status_code == 422, refused.text
    job = api.get(f"/scan/jobs/{job_id}").json()
    assert (job["enqueue_done"], job["enqueued_total"]) == (False, None)
    assert api.get("/scan/jobs").status_code == 200


# ---- finding: a monitor job's end, a job's status -----------------------------------------------


def test_a_connector_cannot_end_its_monitor_job(
    core: Core, api: httpx.Client, alice: tuple[dict[str, Any], httpx.Client]
) -> None:
    owner, client = alice
    monitor = submit(client, owner, "changed.txt")  # a change event: the answer names the monitor job
    assert monitor.startswith(ID_PREFIX)

    for body in ({"enqueued_total": 0, "status": "failed", "error": "x"}, {"enqueued_total": 0}):
        refused = client.post(f"/scan/jobs/{monitor}/enqueue_done", json=body)
        assert refused.status_code == 400, refused.text
        assert api.post(f"/scan/jobs/{monitor}/enqueue_done", json=body).status_code == 400
    job = api.get(f"/scan/jobs/{monitor}").json()
    assert (job["status"], job["enqueue_done"], job["failure_reason"]) == ("running", False, None)

    # a job of kind monitor, whatever its id (one stored before monitor ids had their prefix)
    legacy = f"legacy-{uuid.uuid4().hex}"
    core.redis.hset(keys.job(legacy), mapping={"job_id": legacy, "kind": "monitor", "status": "running",
                                               "connector_uuid": owner["uuid"]})  # fmt: skip
    assert client.post(f"/scan/jobs/{legacy}/enqueue_done", json={"enqueued_total": 0}).status_code == 400
    assert core.redis.hget(keys.job(legacy), "enqueue_done") is None


def test_a_job_status_is_shown_to_its_own_connector_only(
    core: Core,
    alice: tuple[dict[str, Any], httpx.Client],
    bob: tuple[dict[str, Any], httpx.Client],
) -> None:
    owner, client = alice
    job_id = submit(client, owner, "a.txt", scan_job_id=uuid.uuid4().hex, job_item_id="1")
    monitor = submit(client, owner, "changed.txt")

    for job in (job_id, monitor):
        assert client.get(f"/scan/jobs/{job}/raw").json()["data"] == {"status": "running"}
        _, other = bob
        seen = other.get(f"/scan/jobs/{job}/raw")
        assert seen.status_code == 200 and seen.json()["data"] == {}, "another connector read the status"
        assert httpx.get(f"{core.api}/scan/jobs/{job}/raw", timeout=10).json()["data"] == {}


# ---- finding: the 1.x clear routes take no filter -----------------------------------------------


def test_a_1x_clear_with_a_query_parameter_deletes_nothing(core: Core, api: httpx.Client) -> None:
    store = DeadLetterStore(core.redis, retain_s=7 * 86400)
    store.clear()
    stamp = time.strftime("%Y-%m-%dT%H:%M:%S.000Z", time.gmtime())
    store.add_many(
        [
            DeadLetter(id=f"dl-{n}", stage=stage, reason="gave up", attempts=6, job_id="j-1",  # type: ignore[arg-type]
                       connector_uuid="c-1", location=f"f{n}.txt", failed_at=stamp, payload={"id": f"dl-{n}"})
            for n, stage in enumerate(("scan", "scan", "action"))
        ]
    )  # fmt: skip
    try:
        for method in ("POST", "DELETE"):
            for path in ("/clear/scan_request", "/clear"):
                answer = api.request(method, f"/admin/dead-letter{path}", params={"id": "dl-0"})
                assert answer.status_code == 422, answer.text
                assert "unknown query parameter(s) id" in answer.json()["message"]
        assert store.stats()["count"] == 3, "a misspelt filter deleted dead letters"
        assert api.post("/admin/dead-letter/clear/scan_request").json()["cleared_count"] == 2
    finally:
        store.clear()
