"""The core's REST API against a real process and a real Redis (SPEC §4)."""

from __future__ import annotations

import json
import time
import uuid

import httpx
import pytest
from fastapi import FastAPI
from fastapi.responses import JSONResponse

from dsx_connect import keys
from tests.dsx_connect.conftest import Core
from tests.support.auth import OPERATOR_HEADERS
from tests.support.threaded_server import serving

pytestmark = pytest.mark.integration


def connector_body(uid: str | None = None, **extra: object) -> dict[str, object]:
    return {
        "name": "filesystem-connector",
        "uuid": uid or str(uuid.uuid4()),
        "url": "http://127.0.0.1:9/filesystem-connector",
        "asset": "/data",
        "filter": "",
        "item_action": "move",
        "status": "ready",
        **extra,
    }


def scan_request(conn: dict[str, object], location: str = "a.txt", **extra: object) -> dict[str, object]:
    return {"connector": conn, "location": location, "metainfo": location, **extra}


@pytest.fixture
def api(core: Core) -> httpx.Client:
    with core.client() as client:
        yield client


@pytest.fixture
def registered(api: httpx.Client) -> dict[str, object]:
    body = connector_body()
    assert api.post("/connectors/register", json=body).status_code == 201
    return body


def test_probes_answer(core: Core) -> None:
    for path in ("/alive", "/ping", "/healthz", "/dsx-connect/api/v1/healthz"):
        response = httpx.get(core.url + path)
        assert response.status_code == 200, path
        assert response.json()["status"] in ("ok", "pong")
        assert response.json()["ts"].endswith("Z")


def test_readyz_names_the_unreachable_scanner(api: httpx.Client) -> None:
    response = api.get("/readyz")
    assert response.status_code == 503
    assert response.json()["failing"] == ["scanner"]
    assert response.json()["checks"]["redis"] == "ok"


def test_dsxa_connection_test_reports_scanner_down(api: httpx.Client) -> None:
    response = api.get("/test/dsxa-connection")
    assert response.status_code == 502
    assert "unreachable" in response.json()["message"]


def test_register_then_refresh(api: httpx.Client) -> None:
    body = connector_body()
    first = api.post("/connectors/register", json=body)
    again = api.post("/connectors/register", json=body)
    assert (first.status_code, again.status_code) == (201, 200)
    assert first.json()["id"] == body["uuid"]
    listed = [c for c in api.get("/connectors/list").json() if c["uuid"] == body["uuid"]]
    assert listed and listed[0]["asset"] == "/data" and listed[0]["last_heartbeat"]


def test_register_refuses_a_non_http_url(api: httpx.Client) -> None:
    response = api.post("/connectors/register", json=connector_body(url="file:///etc/passwd"))
    assert response.status_code == 422
    assert "url" in response.json()["message"]


def test_unregister(api: httpx.Client, registered: dict[str, object]) -> None:
    assert api.delete(f"/connectors/unregister/{registered['uuid']}").status_code == 200
    assert api.delete(f"/connectors/unregister/{registered['uuid']}").status_code == 404


def test_scan_request_is_accepted_and_queued(
    core: Core, api: httpx.Client, registered: dict[str, object]
) -> None:
    before = core.redis.llen("scan_request_queue")
    response = api.post("/scan/request", json=scan_request(registered))
    assert response.status_code == 202
    body = response.json()
    assert body["status"] == "success" and body["id"] and body["job_id"]
    assert core.redis.llen("scan_request_queue") == before + 1
    state = api.get(f"/scan/request/{body['id']}").json()
    assert state["status"] == "queued" and state["state"]["location"] == "a.txt"
    job = api.get(f"/scan/jobs/{body['job_id']}").json()
    # without a job, a request joins its connector's rolling monitor job (tests/dsx_connect/jobs/test_monitor.py)
    assert job["kind"] == "monitor" and job["enqueued"] >= 1 and job["status"] == "running"


def test_body_without_content_type_is_parsed_as_json(
    api: httpx.Client, registered: dict[str, object]
) -> None:
    raw = json.dumps(scan_request(registered)).encode()
    response = api.post("/scan/request", content=raw, headers={"content-type": ""})
    assert response.status_code == 202, response.text


def test_unknown_connector_is_refused_with_its_uuid(api: httpx.Client) -> None:
    ghost = connector_body()
    response = api.post("/scan/request", json=scan_request(ghost))
    assert response.status_code == 404
    assert ghost["uuid"] in response.json()["message"]


@pytest.mark.parametrize(
    ("body", "named"),
    [
        ({"metainfo": "x"}, "location"),
        ({"location": "", "metainfo": "x"}, "location"),
        ({"location": "a", "metainfo": "x", "size_in_bytes": -1}, "size_in_bytes"),
        ({"location": "a", "metainfo": "x", "size_in_bytes": 2**53}, "size_in_bytes"),
    ],
)
def test_malformed_scan_request_names_the_field(
    api: httpx.Client, registered: dict[str, object], body: dict[str, object], named: str
) -> None:
    response = api.post("/scan/request", json={"connector": registered, **body})
    assert response.status_code == 422
    assert named in response.json()["message"]


def test_broken_json_is_422_not_500(api: httpx.Client) -> None:
    response = api.post("/scan/request", content=b"{not json", headers={"content-type": "application/json"})
    assert response.status_code == 422
    assert response.json()["status"] == "error"


def test_request_without_connector_is_refused(api: httpx.Client) -> None:
    response = api.post("/scan/request", json={"location": "a", "metainfo": "a"})
    assert response.status_code == 422
    assert "connector" in response.json()["message"]


def test_batch_is_split_into_tasks_of_the_max_size(
    core: Core, api: httpx.Client, registered: dict[str, object]
) -> None:
    before = core.redis.llen("scan_request_queue")
    job_id = uuid.uuid4().hex
    requests = [scan_request(registered, f"f{i}.txt", scan_job_id=job_id) for i in range(130)]
    response = api.post("/scan/request_batch", json={"requests": requests})
    assert response.status_code == 202
    # a large batch closes its connection: the next spreads over the API's processes and replicas
    assert response.headers["connection"] == "close"
    assert len(response.json()["ids"]) == 130 and len(set(response.json()["ids"])) == 130
    assert core.redis.llen("scan_request_queue") == before + 3  # 64 + 64 + 2
    job = api.get(f"/scan/jobs/{job_id}").json()
    assert job["enqueued"] == 130 and job["kind"] == "full_scan" and job["enqueued_total"] is None
    small = [scan_request(registered, f"g{i}.txt", scan_job_id=job_id) for i in range(3)]
    kept = api.post("/scan/request_batch", json={"requests": small})
    assert kept.status_code == 202 and kept.headers.get("connection") != "close"


def test_batch_with_one_unknown_connector_accepts_nothing(
    core: Core, api: httpx.Client, registered: dict[str, object]
) -> None:
    before = core.redis.llen("scan_request_queue")
    requests = [scan_request(registered), scan_request(connector_body())]
    assert api.post("/scan/request_batch", json={"requests": requests}).status_code == 404
    assert core.redis.llen("scan_request_queue") == before


def test_resubmitted_item_keeps_its_id(api: httpx.Client, registered: dict[str, object]) -> None:
    job_id = uuid.uuid4().hex
    item = scan_request(registered, scan_job_id=job_id, job_item_id="item-1")
    first = api.post("/scan/request", json=item).json()["id"]
    assert api.post("/scan/request", json=item).json()["id"] == first


def test_job_control_and_invalid_transitions(api: httpx.Client, registered: dict[str, object]) -> None:
    job_id = uuid.uuid4().hex
    api.post("/scan/request", json=scan_request(registered, scan_job_id=job_id))
    assert api.post(f"/scan/jobs/{job_id}/resume").status_code == 409
    assert api.post(f"/scan/jobs/{job_id}/pause").status_code == 200
    assert api.get(f"/scan/jobs/{job_id}/raw").json()["data"]["paused"] == "1"
    assert api.post(f"/scan/jobs/{job_id}/cancel").status_code == 200
    conflict = api.post(f"/scan/jobs/{job_id}/pause")
    assert conflict.status_code == 409 and conflict.json()["job_status"] == "cancelled"
    assert api.get(f"/scan/jobs/{job_id}/raw").json()["data"]["cancel"] == "1"
    assert api.post("/scan/jobs/nope/pause").status_code == 404


def test_enqueue_done_records_the_total(api: httpx.Client, registered: dict[str, object]) -> None:
    job_id = uuid.uuid4().hex
    api.post("/scan/request", json=scan_request(registered, scan_job_id=job_id))
    assert api.post(f"/scan/jobs/{job_id}/enqueue_done", json={"enqueued_total": 4}).status_code == 200
    assert api.get(f"/scan/jobs/{job_id}").json()["enqueued_total"] == 4
    assert api.post(f"/scan/jobs/{job_id}/enqueue_done", json={"enqueued_total": -1}).status_code == 422
    assert api.post("/scan/jobs/unknown/enqueue_done", json={"enqueued_total": 1}).status_code == 404


def test_enqueue_done_can_report_a_failed_enumeration(
    api: httpx.Client, registered: dict[str, object]
) -> None:
    job_id = uuid.uuid4().hex
    api.post("/scan/request", json=scan_request(registered, scan_job_id=job_id))
    body = {"enqueued_total": 1, "status": "failed", "error": "bucket vanished"}
    assert api.post(f"/scan/jobs/{job_id}/enqueue_done", json=body).status_code == 200
    job = api.get(f"/scan/jobs/{job_id}").json()
    assert job["status"] == "failed" and "bucket vanished" in job["failure_reason"]


def test_jobs_are_listed_newest_first(api: httpx.Client) -> None:
    body = api.get("/scan/jobs", params={"limit": 5}).json()
    created = [j["created"] for j in body["items"]]
    assert created == sorted(created, reverse=True)
    assert body["total"] >= len(body["items"])


def test_full_scan_of_unreachable_connector_fails_its_job(
    api: httpx.Client, registered: dict[str, object]
) -> None:
    response = api.post(f"/connectors/full_scan/{registered['uuid']}")
    assert response.status_code == 502
    failed = [j for j in api.get("/scan/jobs").json()["items"] if j["connector_uuid"] == registered["uuid"]]
    assert failed and failed[0]["status"] == "failed" and "unreachable" in failed[0]["failure_reason"]


@pytest.mark.parametrize("trailing", ["", "/"])
def test_calls_to_an_unreachable_connector_are_502_naming_the_route(api: httpx.Client, trailing: str) -> None:
    body = connector_body()
    body["url"] = f"{body['url']}{trailing}"
    assert api.post("/connectors/register", json=body).status_code == 201
    uid, base = body["uuid"], "http://127.0.0.1:9/filesystem-connector"
    calls = [("GET", "estimate"), ("GET", "repo_check"), ("GET", "healthz"), ("GET", "readyz")]
    calls += [("GET", "config"), ("PUT", "config")]
    for method, route in calls:
        update = {"filter": "*.pdf"} if method == "PUT" else None
        answer = api.request(method, f"/connectors/{route}/{uid}", json=update)
        assert answer.status_code == 502, (method, route)
        assert f"unreachable at {base}/{route}:" in answer.json()["message"], answer.text


def test_full_scan_of_unknown_connector_is_404(api: httpx.Client) -> None:
    assert api.post(f"/connectors/full_scan/{uuid.uuid4()}").status_code == 404


def test_unknown_result_and_request_are_404(api: httpx.Client) -> None:
    assert api.get("/scan/results/none").status_code == 404
    assert api.get("/scan/request/none").status_code == 404


def test_results_filter_rejects_an_unknown_verdict(api: httpx.Client) -> None:
    response = api.get("/scan/results", params={"verdict": "Evil"})
    assert response.status_code == 422 and "verdict" in response.json()["message"]


def test_stats_and_metrics(core: Core, api: httpx.Client) -> None:
    stats = api.get("/scan/stats").json()
    assert {"total", "verdicts", "errors", "actions", "bytes_scanned"} <= stats.keys()
    text = httpx.get(core.url + "/metrics", headers=OPERATOR_HEADERS).text
    assert 'dsxconnect_queue_depth{queue="scan_request_queue"}' in text


def test_config_shows_batching_keys_and_no_secret(api: httpx.Client) -> None:
    config = api.get("/config").json()
    assert config["workers"]["scan_request_batch_enabled"] is True
    assert config["workers"]["scan_request_batch_max_size"] == 64


def test_connector_state_round_trip(api: httpx.Client) -> None:
    uid = str(uuid.uuid4())
    assert api.put(f"/connectors/state/{uid}/graph/delta", content=b"token-1").status_code == 204
    assert api.get(f"/connectors/state/{uid}/graph/delta").json() == {"value": "token-1"}
    assert api.get(f"/connectors/state/{uid}/graph/other").status_code == 404
    assert api.put(f"/connectors/state/{uid}/graph/big", content=b"x" * 70_000).status_code == 413


def test_request_id_is_echoed(api: httpx.Client) -> None:
    response = api.get("/meta", headers={"X-Request-ID": "abc-123"})
    assert response.headers["x-request-id"] == "abc-123"
    assert response.json()["name"] == "dsx-connect"


def test_dashboard_is_served(core: Core) -> None:
    response = httpx.get(core.url + "/")
    assert response.status_code == 200 and "dsx-connect" in response.text


def test_dead_letters_can_be_listed_requeued_and_cleared(core: Core, api: httpx.Client) -> None:
    from dsx_connect.state.dead_letters import DeadLetter, DeadLetterStore

    store = DeadLetterStore(core.redis, retain_s=3600)
    store.clear()
    task = {"id": "dl-1", "connector_uuid": "c", "location": "x.txt", "job_id": "j-dl"}
    store.add_many(
        [
            DeadLetter(id=f"dl-{n}", stage="scan", reason="gave up after 6 attempts: connector unreachable",
                       attempts=6, job_id="j-dl", connector_uuid="c", location="x.txt", payload={**task, "id": f"dl-{n}"})
            for n in (1, 2, 3)
        ]
    )  # fmt: skip
    stats = api.get("/dlq/stats").json()
    assert stats["count"] == 3 and stats["by_stage"]["scan"] == 3
    items = api.get("/dlq/items", params={"limit": 2}).json()
    assert (
        items["total"] == 3
        and len(items["items"]) == 2
        and "connector unreachable" in items["items"][0]["reason"]
    )
    rest = api.get("/dlq/items", params={"limit": 2, "cursor": items["next_cursor"]}).json()
    assert [i["id"] for i in rest["items"]] == ["dl-1"] and rest["next_cursor"] is None
    assert api.get("/dlq/items", params={"cursor": "not-a-cursor"}).status_code == 422
    assert api.get("/dlq/items", params={"cursor": items["next_cursor"], "offset": 1}).status_code == 422
    assert api.get("/admin/dead-letter/stats").json()["count"] == 3
    before = core.redis.llen("scan_request_queue")
    requeued = api.post("/dlq/requeue", json={"ids": ["dl-1", "missing"]}).json()
    assert requeued["requeued"] == 1 and requeued["not_found"] == ["missing"]
    assert core.redis.llen("scan_request_queue") == before + 1
    twice = api.post("/dlq/requeue", json={"ids": ["dl-1"]}).json()  # its attempt has not finished
    assert twice["requeued"] == 0 and twice["already_requeued"] == ["dl-1"]
    assert core.redis.llen("scan_request_queue") == before + 1
    stats = api.get("/dlq/stats").json()
    assert stats["count"] == 3 and stats["requeued"] == 1, "a requeued letter stays until its attempt ends"
    listed = {item["id"]: item for item in api.get("/dlq/items").json()["items"]}
    assert listed["dl-1"]["requeued_until"] > time.time() and listed["dl-2"]["requeued_until"] is None
    assert api.post("/dlq/requeue", json={}).status_code == 422
    for body in ({"ids": ["dl-3"], "all": True}, {"all": "yes"}, {"id": ["dl-3"]}):
        refused = api.post("/dlq/requeue", json=body)
        assert refused.status_code == 422, body
    # a misspelt filter (`ids` is the requeue body's name) once read as "no filter": every letter went
    misspelt = api.delete("/dlq", params={"ids": "dl-2"})
    assert misspelt.status_code == 422 and "ids" in misspelt.json()["message"]
    assert api.delete("/dlq").status_code == 422  # all of them only when asked: all=true
    assert api.delete("/dlq", params={"id": "dl-2", "all": "true"}).status_code == 422
    assert api.get("/dlq/stats").json()["count"] == 3
    assert api.delete("/dlq", params={"id": "dl-2"}).json()["cleared"] == 1
    assert api.delete("/dlq", params={"all": "true"}).json()["cleared"] == 2
    assert api.get("/dlq/stats").json()["count"] == 0


def test_a_full_redis_refuses_intake_with_503_and_loses_nothing(
    core: Core, api: httpx.Client, registered: dict[str, object]
) -> None:
    """maxmemory + noeviction: Redis refuses writes instead of evicting; the core answers 503 with
    Retry-After, accepts nothing, and accepts again once memory frees."""
    before = core.redis.llen("scan_request_queue")
    policy = core.redis.config_get("maxmemory-policy")["maxmemory-policy"]
    core.redis.config_set("maxmemory-policy", "noeviction")
    core.redis.config_set("maxmemory", "1")  # whatever is stored already is past it
    try:
        response = api.post("/scan/request", json=scan_request(registered, "full.txt"))
    finally:
        core.redis.config_set("maxmemory", "0")
        core.redis.config_set("maxmemory-policy", policy)
    assert response.status_code == 503, response.text
    assert "maxmemory" in response.json()["message"] and response.headers["retry-after"]
    assert core.redis.llen("scan_request_queue") == before
    assert api.post("/scan/request", json=scan_request(registered, "full.txt")).status_code == 202


@pytest.mark.parametrize(
    "estimate",
    [{"count": 1200, "bytes": 1.5e9, "confidence": "exact"}, {"count": "n/a"}, ["not", "an", "object"]],
)
def test_a_connector_estimate_of_the_wrong_shape_is_no_estimate(api: httpx.Client, estimate: object) -> None:
    """A non-integer count or size was stored as is, and reading the job raised: the job's route,
    the whole job list and the connector's enqueue_done answered 500 for as long as the job was kept."""
    answers = FastAPI()

    @answers.get("/filesystem-connector/estimate")
    def answer_estimate() -> object:
        return estimate

    @answers.post("/filesystem-connector/full_scan")
    def start(job_id: str) -> JSONResponse:
        return JSONResponse({"status": "success", "message": "started"}, 202)

    with serving(answers, name="estimating connector") as url:
        body = connector_body(url=f"{url}/filesystem-connector")
        assert api.post("/connectors/register", json=body).status_code == 201
        started = api.post(f"/connectors/full_scan/{body['uuid']}")
    assert started.status_code == 202, started.text
    job_id = started.json()["job_id"]
    view = api.get(f"/scan/jobs/{job_id}")
    assert view.status_code == 200, view.text
    none = {"count": None, "bytes": None, "confidence": "unknown"}
    assert view.json()["estimate"] in (none, {"count": 1200, "bytes": 1500000000, "confidence": "exact"})
    assert api.get("/scan/jobs").status_code == 200
    assert api.post(f"/scan/jobs/{job_id}/enqueue_done", json={"enqueued_total": 0}).status_code == 200


def test_one_item_id_naming_two_items_of_a_job_is_refused_whole(
    core: Core, api: httpx.Client, registered: dict[str, object]
) -> None:
    """Both got one request id (job + item id): 202 with the same id twice, the second file never
    scanned, and the job waiting for it until the stall sweep failed it."""
    before = core.redis.llen("scan_request_queue")
    batch = [
        scan_request(registered, "a.txt", scan_job_id="dup-items", job_item_id="1"),
        scan_request(registered, "b.txt", scan_job_id="dup-items", job_item_id="1"),
    ]
    answer = api.post("/scan/request_batch", json={"requests": batch})
    assert answer.status_code == 422
    assert "job_item_id '1' of job 'dup-items' names two items" in answer.json()["message"]
    assert core.redis.llen("scan_request_queue") == before
    assert api.get("/scan/jobs/dup-items").status_code == 404
    same_twice = api.post("/scan/request_batch", json={"requests": [batch[0], batch[0]]})
    assert same_twice.status_code == 202  # one item sent twice is one request


@pytest.mark.parametrize(
    ("raw", "field"),
    [
        ('"location": "a\\u0000b.txt", "metainfo": "m"', "location"),
        ('"location": "a.txt", "metainfo": "m\\u0000"', "metainfo"),
        (
            '"location": "a.txt", "metainfo": "m", "requested_action": {"type": "tag", "tags": {"k": "\\ud800"}}',
            "tags",
        ),
        (
            '"location": "a.txt", "metainfo": "m", "requested_action": {"type": "move", "destination": {"path": "q\\udc00"}}',
            "path",
        ),
    ],
)
def test_text_no_store_can_hold_is_refused_naming_the_field_before_anything_is_written(
    core: Core, api: httpx.Client, registered: dict[str, object], raw: str, field: str
) -> None:
    """A NUL (PostgreSQL text refuses it: the result was dropped from the history) or a lone surrogate
    in an action (no UTF-8 for it: 500 after the job was created, retried by the connector forever)."""
    jobs_before = core.redis.zcard("dsxc:jobs")
    body = f'{{"connector": {json.dumps(registered)}, "scan_job_id": "bad-text", {raw}}}'
    answer = api.post("/scan/request", content=body, headers={"Content-Type": "application/json"})
    assert answer.status_code == 422, answer.text
    assert field in answer.text
    assert api.get("/scan/jobs/bad-text").status_code == 404
    assert core.redis.zcard("dsxc:jobs") == jobs_before


def test_change_events_numbering_their_items_alike_are_each_a_request_of_their_own(
    core: Core, api: httpx.Client, registered: dict[str, object]
) -> None:
    """Outside a full scan an item id names nothing in the monitor job: events sharing one shared its
    done bit, and once the first was stored every later one was answered 202 and never scanned."""
    answers = [
        api.post("/scan/request", json=scan_request(registered, name, job_item_id="1")).json()
        for name in ("c1.txt", "c2.txt")
    ]
    assert len({a["id"] for a in answers}) == 2
    for answer in answers:
        pending = core.redis.hget(keys.job_pending(answer["job_id"]), answer["id"])
        assert pending is not None and json.loads(pending)["job_item_id"] is None  # no done bit


def test_an_item_id_accepted_for_one_location_is_refused_for_another_whole_batch(
    core: Core, api: httpx.Client, registered: dict[str, object]
) -> None:
    """Across batches (or a refused batch sent again item by item, as connectors do on a 4xx), one
    item id for two items gave both one request id: the second was answered 202 and never scanned."""
    first = scan_request(registered, "a.txt", scan_job_id="ids-across", job_item_id="1")
    assert api.post("/scan/request", json=first).status_code == 202
    other = scan_request(registered, "b.txt", scan_job_id="ids-across", job_item_id="1")
    refused = api.post("/scan/request", json=other)
    assert refused.status_code == 422
    assert "accepted for 'a.txt', not 'b.txt'" in refused.json()["message"]
    before = core.redis.llen("scan_request_queue")
    fresh = scan_request(registered, "c.txt", scan_job_id="ids-across", job_item_id="2")
    batch = api.post("/scan/request_batch", json={"requests": [fresh, other]})
    assert batch.status_code == 422
    assert core.redis.llen("scan_request_queue") == before  # nothing of the refused batch queued
    assert api.get("/scan/jobs/ids-across").json()["enqueued"] == 1
    assert api.post("/scan/request", json=first).status_code == 202  # the same item again is fine
