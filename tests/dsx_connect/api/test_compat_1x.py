"""Routes a DSX-Connect 1.x client calls, with the 1.x answer shapes pinned (issue 17): ``/version``,
the dead letters under ``/admin/dead-letter/…``, ``/scan/jobs/{id}/raw`` with its TTL, and the
full scan's ``batch`` / ``batch_size`` forwarded to the connector.

The full-scan test needs a connector that shows what it received: a 1.x connector's two routes
(SPEC §5) in a recorder, since a 1.x connector cannot ship here and ours ignores those parameters."""

from __future__ import annotations

import json
import threading
import time
import uuid
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import ClassVar

import httpx
import pytest

from dsx_connect.state.dead_letters import DeadLetter, DeadLetterStore
from dsx_connect.state.jobs import JobStore
from dsx_connect.version import __version__
from tests.dsx_connect.conftest import Core

pytestmark = pytest.mark.integration

DLQ = "/admin/dead-letter"
RETAIN_S = 7 * 86400  # the core's default DSXCONNECT_DLQ__RETAIN_S
QUEUES = ["scan_request", "verdict_action", "scan_result"]


@pytest.fixture
def api(core: Core) -> Iterator[httpx.Client]:
    with core.client() as client:
        yield client


@pytest.fixture
def store(core: Core) -> Iterator[DeadLetterStore]:
    dead_letters = DeadLetterStore(core.redis, retain_s=RETAIN_S)
    dead_letters.clear()
    yield dead_letters
    dead_letters.clear()


def letter(n: int, stage: str, failed_at: str) -> DeadLetter:
    payload = {"id": f"dl-{n}", "connector_uuid": "c-1", "connector_name": "filesystem-connector",
               "location": f"in/f{n}.txt", "metainfo": f"f{n}.txt", "size_in_bytes": 10 * n, "job_id": "j-1"}  # fmt: skip
    return DeadLetter(
        id=f"dl-{n}", stage=stage, reason="gave up after 6 attempts: connector unreachable",  # type: ignore[arg-type]
        attempts=6, job_id="j-1", connector_uuid="c-1", location=f"in/f{n}.txt", failed_at=failed_at,
        payload=payload,
    )  # fmt: skip


def test_version_answers_without_a_credential(core: Core) -> None:
    answer = httpx.get(f"{core.api}/version", timeout=5)
    assert answer.status_code == 200
    assert answer.json() == {"name": "dsx-connect", "version": __version__, "dev_build": True}


def test_an_empty_queue_answers_as_1x_does(api: httpx.Client, store: DeadLetterStore) -> None:
    for queue in QUEUES:
        assert api.get(f"{DLQ}/stats/{queue}").json() == {
            "queue_name": f"dsxc:dlq:{queue}",
            "queue_type": queue,
            "length": 0,
            "ttl_seconds": -2,
            "exists": False,
            "sample_items": None,
        }


def test_queue_stats_count_and_sample_the_letters_of_their_stage(
    api: httpx.Client, store: DeadLetterStore
) -> None:
    now = time.time()
    stamp = time.strftime("%Y-%m-%dT%H:%M:%S.000Z", time.gmtime(int(now) - 60))
    store.add_many(
        [
            letter(1, "scan", stamp),
            letter(2, "scan", stamp),
            letter(3, "action", stamp),
            letter(4, "result", stamp),
        ]
    )

    scans = api.get(f"{DLQ}/stats/scan_request").json()
    ttl = scans.pop("ttl_seconds")
    assert RETAIN_S - 120 <= ttl <= RETAIN_S - 60
    assert scans["queue_name"] == "dsxc:dlq:scan_request" and scans["length"] == 2 and scans["exists"] is True
    assert sorted(item["original_task_id"] for item in scans["sample_items"]) == ["dl-1", "dl-2"]
    first = next(item for item in scans["sample_items"] if item["original_task_id"] == "dl-1")
    assert first == {
        "scan_request": {
            "location": "in/f1.txt",
            "metainfo": "f1.txt",
            "connector": {"uuid": "c-1", "name": "filesystem-connector"},
            "size_in_bytes": 10,
            "scan_job_id": "j-1",
        },
        "failure_reason": "gave up after 6 attempts: connector unreachable",
        "error_details": "gave up after 6 attempts: connector unreachable",
        "failed_at": time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(int(now) - 60)),
        "failed_at_timestamp": float(int(now) - 60),
        "original_task_id": "dl-1",
        "retry_count": 6,
    }
    assert api.get(f"{DLQ}/stats/verdict_action").json()["length"] == 1
    # an outcome whose storing failed (the result step's letters) was hidden from 1.x tools
    assert api.get(f"{DLQ}/stats/scan_result").json()["length"] == 1
    unknown = api.get(f"{DLQ}/stats/not_a_queue")
    assert unknown.status_code == 422 and "scan_request" in unknown.text


def test_health_and_clear_answer_as_1x_does(api: httpx.Client, store: DeadLetterStore) -> None:
    stamp = time.strftime("%Y-%m-%dT%H:%M:%S.000Z", time.gmtime())
    store.add_many([letter(1, "scan", stamp), letter(2, "action", stamp), letter(3, "action", stamp)])

    assert api.get(f"{DLQ}/health").json() == {
        "status": "healthy",
        "redis_connected": True,
        "total_dead_letter_items": 3,
        "available_queues": QUEUES,
    }
    assert api.post(f"{DLQ}/clear/verdict_action").json() == {
        "success": True,
        "queue_type": "verdict_action",
        "queue_name": "dsxc:dlq:verdict_action",
        "cleared_count": 2,
    }
    assert api.post(f"{DLQ}/clear").json() == [
        {"success": True, "queue_type": "scan_request", "queue_name": "dsxc:dlq:scan_request", "cleared_count": 1},
        {"success": True, "queue_type": "verdict_action", "queue_name": "dsxc:dlq:verdict_action", "cleared_count": 0},
        {"success": True, "queue_type": "scan_result", "queue_name": "dsxc:dlq:scan_result", "cleared_count": 0},
    ]  # fmt: skip
    assert api.delete(f"{DLQ}/clear").status_code == 200  # later 1.x releases clear with DELETE
    assert api.get(f"{DLQ}/health").json()["total_dead_letter_items"] == 0


def test_the_1x_dead_letter_routes_need_an_operator(core: Core) -> None:
    for method, path in (("GET", "/stats/scan_request"), ("POST", "/clear"), ("GET", "/health")):
        assert httpx.request(method, f"{core.api}{DLQ}{path}", timeout=5).status_code == 401


def test_job_raw_names_its_key_and_ttl_and_applies_the_retention(core: Core, api: httpx.Client) -> None:
    jobs = JobStore(core.redis)
    job_id = jobs.create("c-raw", "filesystem-connector", "full_scan")
    retain = 30 * 86400  # the core's default DSXCONNECT_JOBS__RETAIN_S

    raw = api.get(f"/scan/jobs/{job_id}/raw").json()
    assert raw["job_id"] == job_id and raw["key"] == f"dsxc:job:{job_id}"
    assert retain - 60 <= raw["ttl"] <= retain and raw["data"]["status"] == "running"

    core.redis.persist(raw["key"])  # a record left without an expiry
    assert api.get(f"/scan/jobs/{job_id}/raw").json()["ttl"] == retain
    assert retain - 60 <= core.redis.ttl(raw["key"]) <= retain


class _Recorder(BaseHTTPRequestHandler):
    """A 1.x connector's full-scan routes as SPEC §5 describes them, recording what the core sends."""

    seen: ClassVar[list[str]] = []

    def _answer(self, status: int, body: dict[str, object]) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self) -> None:
        self.seen.append(f"GET {self.path}")
        self._answer(200, {"count": 3, "confidence": "exact"})

    def do_POST(self) -> None:
        self.seen.append(f"POST {self.path}")
        self.rfile.read(int(self.headers.get("Content-Length") or 0))
        self._answer(202, {"status": "success", "message": "full scan started"})

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def connector_1x(api: httpx.Client) -> Iterator[tuple[str, list[str]]]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Recorder)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    uid = str(uuid.uuid4())
    body = {"name": "filesystem-connector", "uuid": uid, "asset": "/data", "filter": "", "status": "ready",
            "url": f"http://127.0.0.1:{server.server_address[1]}/filesystem-connector", "item_action": "move"}  # fmt: skip
    assert api.post("/connectors/register", json=body).status_code == 201
    _Recorder.seen.clear()
    try:
        yield uid, _Recorder.seen
    finally:
        server.shutdown()
        server.server_close()


def test_full_scan_forwards_batch_and_a_clamped_batch_size(
    api: httpx.Client, connector_1x: tuple[str, list[str]]
) -> None:
    uid, seen = connector_1x
    max_size = api.get("/config").json()["workers"]["scan_request_batch_max_size"]

    answer = api.post(f"/connectors/full_scan/{uid}", params={"batch": "true", "batch_size": max_size + 1000})
    assert answer.status_code == 202, answer.text
    job_id = answer.json()["job_id"]
    assert f"POST /filesystem-connector/full_scan?job_id={job_id}&batch=true&batch_size={max_size}" in seen

    answer = api.post(f"/connectors/full_scan/{uid}", params={"batch_size": 7})
    assert f"POST /filesystem-connector/full_scan?job_id={answer.json()['job_id']}&batch_size=7" in seen
    answer = api.post(f"/connectors/full_scan/{uid}")
    assert f"POST /filesystem-connector/full_scan?job_id={answer.json()['job_id']}" in seen
    assert api.post(f"/connectors/full_scan/{uid}", params={"batch_size": 0}).status_code == 422
