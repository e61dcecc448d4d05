"""The four-queue pipeline with real Celery workers, a real dsxa_lite and a real filesystem connector.

Covers what the happy-path e2e test does not: a scanner that is down (retries, then a visible failed
result) and comes back, a missing file, a requested action, and pause / resume / cancel of a job.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
import redis

from dsx_connect.queues import ALL_QUEUES
from tests.dsxa_lite.samples import eicar
from tests.support.auth import OPERATOR_HEADERS
from tests.support.procs import PYTHON, ServiceProcess, base_env, free_port, uvicorn_argv, wait_for

pytestmark = pytest.mark.integration

API = "/dsx-connect/api/v1"


@dataclass
class Pipeline:
    api: httpx.Client
    redis: redis.Redis
    asset: Path
    quarantine: Path
    connector: dict[str, object]
    dsxa: ServiceProcess
    dsxa_port: int
    fs: ServiceProcess
    fs_port: int
    logs: Path
    worker: ServiceProcess

    def submit(self, location: str, **extra: object) -> dict[str, object]:
        body = {"connector": self.connector, "location": location, "metainfo": location, **extra}
        response = self.api.post("/scan/request", json=body)
        assert response.status_code == 202, response.text
        return response.json()

    def result(self, request_id: str, timeout: float = 30.0) -> dict[str, object]:
        def done() -> dict[str, object] | None:
            response = self.api.get(f"/scan/results/{request_id}")
            return response.json() if response.status_code == 200 else None

        return wait_for(done, timeout=timeout, what=f"result of {request_id}")  # type: ignore[return-value]

    def restart_scanner(self) -> None:
        self.dsxa = ServiceProcess(self.dsxa.name, self.dsxa.argv, self.dsxa.env, self.logs).start()
        self.dsxa.wait_healthy(f"http://127.0.0.1:{self.dsxa_port}/healthz")

    @contextmanager
    def scripted_scanner(self, answer: dict[str, object]) -> Iterator[None]:
        """dsxa_lite replaced, on its port, by a scanner answering every scan with ``answer``."""
        self.dsxa.stop()
        scripted = ServiceProcess(
            f"{self.dsxa.name}-scripted", uvicorn_argv("tests.support.scripted_scanner:app", self.dsxa_port),
            base_env(SCRIPTED_VERDICT=json.dumps(answer)), self.logs,
        ).start()  # fmt: skip
        try:
            scripted.wait_healthy(f"http://127.0.0.1:{self.dsxa_port}/healthz")
            yield
        finally:
            scripted.stop()
            self.restart_scanner()

    def restart_connector(self) -> None:
        self.fs = ServiceProcess(self.fs.name, self.fs.argv, self.fs.env, self.logs).start()
        self.fs.wait_healthy(f"http://127.0.0.1:{self.fs_port}/filesystem-connector/healthz")


@pytest.fixture(scope="module")
def pipeline(redis_url: str, tmp_path_factory: pytest.TempPathFactory, logs_dir: Path) -> Iterator[Pipeline]:
    root = tmp_path_factory.mktemp("pipeline")
    asset, quarantine = root / "asset", root / "quarantine"
    asset.mkdir()
    quarantine.mkdir()
    db_url = redis_url.rsplit("/", 1)[0] + "/7"
    conn = redis.Redis.from_url(db_url, decode_responses=True)
    conn.flushdb()
    dsxa_port, core_port, fs_port = free_port(), free_port(), free_port()
    core_env = base_env(
        DSXCONNECT_REDIS_URL=db_url,
        DSXCONNECT_SCANNER__SCAN_BINARY_URL=f"http://127.0.0.1:{dsxa_port}/scan/binary/v2",
        DSXCONNECT_SCANNER__CONNECT_TIMEOUT_S="2",
        DSXCONNECT_WORKERS__MAX_RETRIES="2",
        DSXCONNECT_WORKERS__RETRY_BACKOFF_S="0.2",
        DSXCONNECT_WORKERS__RETRY_BACKOFF_MAX_S="0.5",
        DSXCONNECT_WORKERS__BREAKER_OPEN_S="0.5",
        DSXCONNECT_WORKERS__BREAKER_OPEN_MAX_S="1",
    )
    procs = [
        ServiceProcess(f"pipe-dsxa-{dsxa_port}", uvicorn_argv("dsxa_lite.app:app", dsxa_port), base_env(), logs_dir),
        ServiceProcess(f"pipe-core-{core_port}", uvicorn_argv("dsx_connect.app:app", core_port), core_env, logs_dir),
        ServiceProcess(
            f"pipe-worker-{core_port}",
            [PYTHON, "-m", "celery", "-A", "dsx_connect.workers.celery_app:celery_app", "worker",
             "-Q", ",".join(ALL_QUEUES), "--pool", "prefork", "--concurrency", "2", "-n", f"pipe{core_port}@%h",
             "--loglevel", "INFO"],
            core_env, logs_dir,
        ),
        ServiceProcess(
            f"pipe-fs-{fs_port}", uvicorn_argv("connectors.filesystem.app:app", fs_port),
            base_env(
                DSXCONNECTOR_DSX_CONNECT_URL=f"http://127.0.0.1:{core_port}",
                DSXCONNECTOR_CONNECTOR_URL=f"http://127.0.0.1:{fs_port}/filesystem-connector",
                DSXCONNECTOR_ASSET=str(asset),
                DSXCONNECTOR_ITEM_ACTION="move",
                DSXCONNECTOR_ITEM_ACTION_MOVE_METAINFO=str(quarantine),
                DSXCONNECTOR_MONITOR="false",
            ),
            logs_dir,
        ),
    ]  # fmt: skip
    api = httpx.Client(base_url=f"http://127.0.0.1:{core_port}{API}", timeout=10.0, headers=OPERATOR_HEADERS)
    pipe: Pipeline | None = None
    try:
        for proc in procs[:2]:
            proc.start()
        procs[0].wait_healthy(f"http://127.0.0.1:{dsxa_port}/healthz")
        procs[1].wait_healthy(f"http://127.0.0.1:{core_port}/healthz")
        procs[2].start()
        wait_for(
            lambda: "ready." in procs[2].log_path.read_text(errors="replace"),
            timeout=60,
            what="celery worker",
        )
        procs[3].start()
        procs[3].wait_healthy(f"http://127.0.0.1:{fs_port}/filesystem-connector/healthz")
        connectors = wait_for(
            lambda: api.get("/connectors/list").json(), timeout=30, what="connector registration"
        )
        pipe = Pipeline(
            api,
            conn,
            asset,
            quarantine,
            connectors[0],
            procs[0],
            dsxa_port,
            procs[3],
            fs_port,
            logs_dir,
            procs[2],
        )  # type: ignore[index]
        yield pipe
    finally:
        api.close()
        for proc in reversed(procs):
            proc.stop()
        if pipe is not None:  # the scanner and the connector may have been restarted by a test
            pipe.dsxa.stop()
            pipe.fs.stop()
        conn.flushdb()
        conn.close()


def test_benign_and_malicious_files_get_verdicts_and_the_action(pipeline: Pipeline) -> None:
    (pipeline.asset / "docs").mkdir(exist_ok=True)
    (pipeline.asset / "docs" / "ok.txt").write_bytes(b"hello world\n")
    (pipeline.asset / "docs" / "bad.com").write_bytes(eicar())
    ok = pipeline.result(pipeline.submit("docs/ok.txt")["id"])
    bad = pipeline.result(pipeline.submit("docs/bad.com")["id"])
    assert ok["verdict"] == "Benign" and ok["action"]["applied"] is False
    assert ok["file_info"]["size_in_bytes"] == 12
    assert bad["verdict"] == "Malicious"
    assert bad["action"] == {
        "requested": "move",
        "applied": True,
        "status": "success",
        "message": bad["action"]["message"],
    }
    assert (pipeline.quarantine / "docs" / "bad.com").read_bytes() == eicar()
    assert not (pipeline.asset / "docs" / "bad.com").exists()


@pytest.mark.parametrize(
    "size",
    [
        pytest.param(None, id="read_file (size unknown)"),
        pytest.param(12, id="read_files (small, size known)"),
    ],
)
def test_a_missing_file_is_a_visible_failed_result(pipeline: Pipeline, size: int | None) -> None:
    # a job of its own, so its counts are this item's (job-less requests share the monitor job)
    submitted = pipeline.submit("no/such/file.txt", size_in_bytes=size, scan_job_id=uuid.uuid4().hex)
    result = pipeline.result(submitted["id"])
    assert result["verdict"] == "Not Scanned"
    assert result["error"]["kind"] == "permanent"
    assert "not found" in result["error"]["message"]
    job = pipeline.api.get(f"/scan/jobs/{submitted['job_id']}").json()
    assert job["errors"] == 1 and job["processed"] == 1


def test_requested_action_overrides_the_connector_setting(pipeline: Pipeline) -> None:
    (pipeline.asset / "kill.com").write_bytes(eicar())
    submitted = pipeline.submit("kill.com", requested_action={"type": "delete"})
    result = pipeline.result(submitted["id"])
    assert result["action"]["requested"] == "delete" and result["action"]["applied"] is True
    assert not (pipeline.asset / "kill.com").exists()
    assert not (pipeline.quarantine / "kill.com").exists()


def test_scanner_down_opens_the_circuit_and_scans_wait_without_burning_retries(pipeline: Pipeline) -> None:
    (pipeline.asset / "during-outage.txt").write_bytes(b"benign\n")
    pipeline.dsxa.stop()
    try:
        submitted = pipeline.submit("during-outage.txt")

        def circuit_open() -> bool:
            checks = pipeline.api.get("/readyz").json()["checks"]
            return "circuit open" in checks["scanner"]

        wait_for(circuit_open, timeout=30, what="the scanner circuit to open")
        # max_retries is 2: without the breaker the item would have failed by now
        assert pipeline.api.get(f"/scan/results/{submitted['id']}").status_code == 404
    finally:
        pipeline.restart_scanner()
    result = pipeline.result(submitted["id"])
    assert result["verdict"] == "Benign" and result["error"] is None
    wait_for(lambda: pipeline.api.get("/readyz").status_code == 200, timeout=15, what="readyz after recovery")


def test_a_verdict_word_outside_the_spec_is_stored_as_unknown_keeping_the_scanners_word(
    pipeline: Pipeline,
) -> None:
    (pipeline.asset / "odd.txt").write_bytes(b"odd\n")
    with pipeline.scripted_scanner({"verdict": "Suspicious"}):
        submitted = pipeline.submit("odd.txt", scan_job_id=uuid.uuid4().hex)
        result = pipeline.result(submitted["id"])
    assert result["verdict"] == "Unknown" and result["error"] is None
    assert result["verdict_details"]["scanner_verdict"] == "Suspicious"
    assert (pipeline.asset / "odd.txt").exists()  # Unknown calls for no action
    job = pipeline.api.get(f"/scan/jobs/{submitted['job_id']}").json()
    assert job["processed"] == 1 and job["verdicts"]["Unknown"] == 1
    assert all(item["id"] != submitted["id"] for item in pipeline.api.get("/dlq/items").json()["items"])


def test_a_malicious_answer_with_unreadable_details_still_gets_its_verdict_and_action(
    pipeline: Pipeline,
) -> None:
    (pipeline.asset / "shouted.com").write_bytes(b"not really eicar\n")
    odd = {
        "verdict": "MALICIOUS",
        "file_info": {"file_size_in_bytes": "lots"},
        "verdict_details": {"threat_type": 9},
    }
    with pipeline.scripted_scanner(odd):
        result = pipeline.result(pipeline.submit("shouted.com")["id"])
    assert result["verdict"] == "Malicious" and result["error"] is None
    assert result["verdict_details"]["threat_type"] == "9"
    assert result["verdict_details"]["unreadable_fields"] == {"file_info.file_size_in_bytes": "'lots'"}
    assert result["action"]["applied"] is True  # moved to quarantine, as configured
    assert (pipeline.quarantine / "shouted.com").exists() and not (pipeline.asset / "shouted.com").exists()


def test_an_item_sent_again_after_its_result_is_stored_is_not_scanned_again(pipeline: Pipeline) -> None:
    """A copy of a finished item (a resubmitted batch, a lease that passed while its task waited, a
    redelivery) reaches the scan step: it is published again, not read and scanned again."""
    (pipeline.asset / "once.txt").write_bytes(b"once\n")
    job_id = uuid.uuid4().hex
    url = f"http://127.0.0.1:{pipeline.dsxa_port}/__scans"
    with pipeline.scripted_scanner({}):
        first = pipeline.submit("once.txt", scan_job_id=job_id, job_item_id="1")
        assert pipeline.result(str(first["id"]))["verdict"] == "Benign"
        skipped_before = pipeline.worker.log_path.read_text(errors="replace").count("not scanned again")
        again = pipeline.submit("once.txt", scan_job_id=job_id, job_item_id="1")  # the same request
        assert again["id"] == first["id"]
        wait_for(
            lambda: pipeline.worker.log_path.read_text(errors="replace").count("not scanned again") > skipped_before,
            timeout=30, what="the scan step to drop the finished copy",
        )  # fmt: skip
        assert httpx.get(url).json() == {"once.txt": 1}
    job = pipeline.api.get(f"/scan/jobs/{job_id}").json()
    assert job["processed"] == 1 and job["enqueued"] == 1


def test_an_answer_that_is_not_a_verdict_is_a_visible_permanent_failure(pipeline: Pipeline) -> None:
    (pipeline.asset / "garbled.txt").write_bytes(b"garbled\n")
    with pipeline.scripted_scanner({"verdict": None}):
        submitted = pipeline.submit("garbled.txt", scan_job_id=uuid.uuid4().hex)
        result = pipeline.result(submitted["id"])
    assert result["verdict"] == "Not Scanned" and result["error"]["kind"] == "permanent"
    assert "not a verdict" in result["error"]["message"] and "verdict" in result["error"]["message"]
    job = pipeline.api.get(f"/scan/jobs/{submitted['job_id']}").json()
    assert job["processed"] == 1 and job["errors"] == 1


def test_connector_down_during_reads_dead_letters_then_requeue_finishes_normally(pipeline: Pipeline) -> None:
    (pipeline.asset / "while-connector-down.txt").write_bytes(b"benign too\n")
    pipeline.fs.kill()  # gone without unregistering, as a crash or a network cut would leave it
    try:
        submitted = pipeline.submit("while-connector-down.txt", scan_job_id=uuid.uuid4().hex)
        failed = pipeline.result(submitted["id"])
        assert failed["verdict"] == "Not Scanned" and failed["error"]["kind"] == "exhausted"
        assert "gave up after 3 attempts" in failed["error"]["message"]
        letters = pipeline.api.get("/dlq/items").json()["items"]
        letter = next(item for item in letters if item["id"] == submitted["id"])
        assert letter["stage"] == "scan" and "connector" in letter["reason"]
    finally:
        pipeline.restart_connector()
    assert pipeline.api.post("/dlq/requeue", json={"ids": [submitted["id"]]}).json()["requeued"] == 1

    def replaced() -> dict[str, object] | None:
        result = pipeline.api.get(f"/scan/results/{submitted['id']}").json()
        return result if result["verdict"] == "Benign" else None

    result = wait_for(replaced, timeout=30, what="the requeued item's result")
    assert result["error"] is None  # type: ignore[index]
    job = pipeline.api.get(f"/scan/jobs/{submitted['job_id']}").json()
    assert job["processed"] == 1 and job["errors"] == 0 and job["verdicts"]["Benign"] == 1
    assert all(item["id"] != submitted["id"] for item in pipeline.api.get("/dlq/items").json()["items"])


def test_paused_job_holds_its_items_until_resumed(pipeline: Pipeline) -> None:
    job_id = uuid.uuid4().hex
    (pipeline.asset / "first.txt").write_bytes(b"one\n")
    (pipeline.asset / "held.txt").write_bytes(b"two\n")
    pipeline.result(pipeline.submit("first.txt", scan_job_id=job_id)["id"])
    assert pipeline.api.post(f"/scan/jobs/{job_id}/pause").status_code == 200
    held = pipeline.submit("held.txt", scan_job_id=job_id)["id"]
    with pytest.raises(TimeoutError):  # held, not scanned, while paused
        pipeline.result(held, timeout=3.0)
    assert pipeline.api.post(f"/scan/jobs/{job_id}/resume").status_code == 200
    assert pipeline.result(held)["verdict"] == "Benign"
    pipeline.api.post(f"/scan/jobs/{job_id}/enqueue_done", json={"enqueued_total": 2})
    job = pipeline.api.get(f"/scan/jobs/{job_id}").json()
    assert job["status"] == "completed" and job["processed"] == 2


def test_cancelled_job_skips_what_is_not_scanned(pipeline: Pipeline) -> None:
    job_id = uuid.uuid4().hex
    (pipeline.asset / "c1.txt").write_bytes(b"one\n")
    pipeline.result(pipeline.submit("c1.txt", scan_job_id=job_id)["id"])
    pipeline.api.post(f"/scan/jobs/{job_id}/pause")
    pipeline.submit("c1.txt", scan_job_id=job_id, job_item_id="second")
    assert pipeline.api.post(f"/scan/jobs/{job_id}/cancel").status_code == 200
    job = wait_for(
        lambda: (j := pipeline.api.get(f"/scan/jobs/{job_id}").json())["skipped"] == 1 and j,
        timeout=15,
        what="skip",
    )
    assert job["status"] == "cancelled" and job["processed"] == 1  # type: ignore[index]


def test_a_task_raising_an_unexpected_error_dead_letters_each_item_then_requeue_scans_them(
    pipeline: Pipeline,
) -> None:
    """No silent drop: a step that raises something no handler expects (here the breaker's state in
    Redis is unreadable, so ``float()`` raises inside the scan task) lands every item of its batch in
    the dead-letter store with the reason, each with a visible failed result; nothing is acked away."""
    job_id = uuid.uuid4().hex
    names = [f"unexpected/{n}.txt" for n in range(6)]
    (pipeline.asset / "unexpected").mkdir(exist_ok=True)
    for name in names:
        (pipeline.asset / name).write_bytes(b"fine\n")
    pipeline.redis.hset("dsxc:breaker:scanner", "open_until", "not a number")
    try:
        body = {
            "requests": [
                {"connector": pipeline.connector, "location": n, "metainfo": n, "scan_job_id": job_id}
                for n in names
            ]
        }
        response = pipeline.api.post("/scan/request_batch", json=body)
        assert response.status_code == 202, response.text
        ids = set(response.json()["ids"])

        def letters() -> list[dict[str, object]] | None:
            items = pipeline.api.get("/dlq/items", params={"limit": 1000}).json()["items"]
            mine = [i for i in items if i["job_id"] == job_id]
            return mine if len(mine) == len(names) else None

        found = wait_for(letters, timeout=30, what="a dead letter for every item")
        assert all(
            letter["stage"] == "scan"
            and "unexpected error in the scan step" in str(letter["reason"])
            and "ValueError" in str(letter["reason"])
            for letter in found  # type: ignore[union-attr]
        )
        assert sorted(str(letter["location"]) for letter in found) == names  # type: ignore[union-attr]
        assert {letter["id"] for letter in found} == ids  # type: ignore[union-attr]
        job = wait_for(
            lambda: (j := pipeline.api.get(f"/scan/jobs/{job_id}").json())["processed"] == len(names) and j,
            timeout=30,
            what="a failed result for every item",
        )
        assert job["errors"] == len(names)  # type: ignore[index]
    finally:
        pipeline.redis.hdel("dsxc:breaker:scanner", "open_until")
    requeued = pipeline.api.post("/dlq/requeue", json={"ids": [letter["id"] for letter in found]}).json()  # type: ignore[union-attr]
    assert requeued["requeued"] == len(names)
    job = wait_for(
        lambda: (
            (j := pipeline.api.get(f"/scan/jobs/{job_id}").json())["verdicts"].get("Benign") == len(names)
            and j
        ),
        timeout=30,
        what="the requeued items' results",
    )
    assert job["processed"] == len(names) and job["errors"] == 0  # type: ignore[index]
    remaining = pipeline.api.get("/dlq/items", params={"limit": 1000}).json()["items"]
    assert not [i for i in remaining if i["job_id"] == job_id]


def test_a_change_event_submitted_twice_is_one_request_and_one_result(pipeline: Pipeline) -> None:
    (pipeline.asset / "changed.txt").write_bytes(b"new content\n")
    first = pipeline.submit("changed.txt", item_version="dev:1:12:1700000000")
    result = pipeline.result(str(first["id"]))
    job = pipeline.api.get(f"/scan/jobs/{first['job_id']}").json()  # the connector's monitor job
    again = pipeline.submit("changed.txt", item_version="dev:1:12:1700000000")  # a retried submit
    assert again["id"] == first["id"] and again["job_id"] == first["job_id"]
    assert result["verdict"] == "Benign"
    after = pipeline.api.get(f"/scan/jobs/{first['job_id']}").json()
    assert after["enqueued"] == job["enqueued"], "the retried submit was counted again"
    newer = pipeline.submit("changed.txt", item_version="dev:1:12:1700000001")  # a real new change
    assert newer["id"] != first["id"]
    pipeline.result(str(newer["id"]))
