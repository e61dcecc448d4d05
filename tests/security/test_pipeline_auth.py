"""Workers, with auth on, against a real filesystem connector: they call only the registered URL (a
scan request naming another one is read from the registered connector, and the other URL never hears
of it), every call they make is DSX-HMAC signed, and a key rotation or revocation takes effect without
a scan failing on the way."""

from __future__ import annotations

import threading
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

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
class Trap:
    """An HTTP server recording every request it gets (a URL no worker may call)."""

    url: str
    hits: list[str] = field(default_factory=list)


@dataclass
class Pipeline:
    api: httpx.Client
    asset: Path
    quarantine: Path
    connector: dict[str, Any]
    trap: Trap
    fs: ServiceProcess
    core_url: str
    root: Path
    logs_dir: Path

    def submit(self, location: str, **extra: Any) -> str:
        body = {"connector": self.connector, "location": location, "metainfo": location, **extra}
        answer = self.api.post("/scan/request", json=body)
        assert answer.status_code == 202, answer.text
        return str(answer.json()["id"])

    def result(self, request_id: str) -> dict[str, Any]:
        def done() -> dict[str, Any] | None:
            answer = self.api.get(f"/scan/results/{request_id}")
            return answer.json() if answer.status_code == 200 else None

        return wait_for(done, timeout=30, what=f"result of {request_id}")  # type: ignore[return-value]


@pytest.fixture(scope="module")
def trap() -> Iterator[Trap]:
    hits: list[str] = []

    class Handler(BaseHTTPRequestHandler):
        def _record(self) -> None:
            hits.append(f"{self.command} {self.path}")
            self.send_response(200)
            self.send_header("content-type", "application/octet-stream")
            self.end_headers()
            self.wfile.write(b"attacker-controlled bytes")

        do_GET = do_POST = do_PUT = _record

        def log_message(self, *args: object) -> None:
            return None

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield Trap(f"http://127.0.0.1:{server.server_address[1]}/filesystem-connector", hits)
    finally:
        server.shutdown()


@pytest.fixture(scope="module")
def pipeline(
    redis_url: str, tmp_path_factory: pytest.TempPathFactory, logs_dir: Path, trap: Trap
) -> Iterator[Pipeline]:
    root = tmp_path_factory.mktemp("secure-pipeline")
    asset, quarantine = root / "asset", root / "quarantine"
    asset.mkdir()
    quarantine.mkdir()
    db_url = redis_url.rsplit("/", 1)[0] + "/10"
    redis.Redis.from_url(db_url).flushdb()
    dsxa_port, core_port, fs_port = free_port(), free_port(), free_port()
    core_env = base_env(
        DSXCONNECT_REDIS_URL=db_url,
        DSXCONNECT_SCANNER__SCAN_BINARY_URL=f"http://127.0.0.1:{dsxa_port}/scan/binary/v2",
        DSXCONNECT_WORKERS__RETRY_BACKOFF_S="0.2",
        DSXCONNECT_WORKERS__RETRY_BACKOFF_MAX_S="0.5",
        DSXCONNECT_AUTH__KEY_ROTATION_GRACE_S="60",
        DSXCONNECT_AUTH__ALLOW_FLEET_REENROLL="false",  # SPEC §8: a fleet token creates identities only
    )
    fs_env = base_env(
        DSXCONNECTOR_DSX_CONNECT_URL=f"http://127.0.0.1:{core_port}",
        DSXCONNECTOR_CONNECTOR_URL=f"http://127.0.0.1:{fs_port}/filesystem-connector",
        DSXCONNECTOR_ASSET=str(asset),
        DSXCONNECTOR_ITEM_ACTION="move",
        DSXCONNECTOR_ITEM_ACTION_MOVE_METAINFO=str(quarantine),
        DSXCONNECTOR_HEARTBEAT_INTERVAL_S="1",
        DSXCONNECTOR_AUTH__KEY_FILE=str(root / "filesystem.key"),
    )
    worker_argv = [
        PYTHON, "-m", "celery", "-A", "dsx_connect.workers.celery_app:celery_app", "worker", "-Q",
        ",".join(ALL_QUEUES), "--pool", "solo", "-n", f"secure{core_port}@%h", "--loglevel", "INFO",
    ]  # fmt: skip
    dsxa = ServiceProcess(
        f"sec-dsxa-{dsxa_port}", uvicorn_argv("dsxa_lite.app:app", dsxa_port), base_env(), logs_dir
    )
    core = ServiceProcess(
        f"sec-core-{core_port}", uvicorn_argv("dsx_connect.app:app", core_port), core_env, logs_dir
    )
    worker = ServiceProcess(f"sec-worker-{core_port}", worker_argv, core_env, logs_dir)
    fs = ServiceProcess(
        f"sec-fs-{fs_port}", uvicorn_argv("connectors.filesystem.app:app", fs_port), fs_env, logs_dir
    )
    api = httpx.Client(base_url=f"http://127.0.0.1:{core_port}{API}", timeout=10.0, headers=OPERATOR_HEADERS)
    try:
        for proc in (dsxa, core, worker):
            proc.start()
        dsxa.wait_healthy(f"http://127.0.0.1:{dsxa_port}/healthz", timeout=60)
        core.wait_healthy(f"http://127.0.0.1:{core_port}/healthz", timeout=60)
        fs.start()
        wait_for(lambda: "ready." in worker.log_tail(200), timeout=60, what="celery worker")
        fs.wait_healthy(f"http://127.0.0.1:{fs_port}/filesystem-connector/readyz", timeout=60)
        connector = wait_for(lambda: api.get("/connectors/list").json(), timeout=30, what="registration")[0]  # type: ignore[index]
        yield Pipeline(
            api, asset, quarantine, connector, trap, fs, f"http://127.0.0.1:{core_port}", root, logs_dir
        )
    finally:
        api.close()
        for proc in (fs, worker, core, dsxa):
            proc.stop()


def test_a_scan_request_naming_another_url_is_read_from_the_registered_connector(pipeline: Pipeline) -> None:
    (pipeline.asset / "evil.com").write_bytes(eicar())
    lying = {**pipeline.connector, "url": pipeline.trap.url}
    request_id = pipeline.submit("evil.com", connector=lying, connector_url=pipeline.trap.url)
    result = pipeline.result(request_id)
    assert result["verdict"] == "Malicious"  # the real file, from the registered connector
    assert result["action"]["applied"] is True  # the move went to the registered connector too, signed
    assert (pipeline.quarantine / "evil.com").read_bytes() == eicar()
    assert pipeline.trap.hits == []


def test_the_connector_accepted_only_signed_calls(pipeline: Pipeline) -> None:
    log = pipeline.fs.log_path.read_text(errors="replace")
    assert "refused a request not signed by dsx-connect" not in log
    unsigned = httpx.post(
        pipeline.connector["url"] + "/read_file", json={"location": "x", "metainfo": "x"}, timeout=5
    )
    assert unsigned.status_code == 401


def test_the_core_drives_the_connector_with_signed_control_calls(pipeline: Pipeline) -> None:
    uid = pipeline.connector["uuid"]
    assert pipeline.api.get(f"/connectors/estimate/{uid}").json()["confidence"] == "exact"
    assert pipeline.api.get(f"/connectors/config/{uid}").json()["name"] == "filesystem-connector"
    assert pipeline.api.get(f"/connectors/repo_check/{uid}").json()["status"] == "success"


def test_a_rotation_takes_effect_without_a_failed_scan(pipeline: Pipeline) -> None:
    uid = pipeline.connector["uuid"]
    before = pipeline.api.get(f"/auth/connectors/{uid}").json()["key_id"]
    rotated = pipeline.api.post(f"/auth/connectors/{uid}/rotate").json()["key_id"]
    ids = []
    for n in range(3):  # during the switch: the connector still holds the old pair
        (pipeline.asset / f"r{n}.txt").write_bytes(b"benign %d" % n)
        ids.append(pipeline.submit(f"r{n}.txt"))
    wait_for(
        lambda: pipeline.api.get(f"/auth/connectors/{uid}").json()["key_delivered"], timeout=15,
        what="the connector to fetch its new pair (next heartbeat)",
    )  # fmt: skip
    for n in range(3, 6):  # after: signed with the new pair both ways
        (pipeline.asset / f"r{n}.txt").write_bytes(b"benign %d" % n)
        ids.append(pipeline.submit(f"r{n}.txt"))
    assert [pipeline.result(i)["verdict"] for i in ids] == ["Benign"] * 6
    keys = pipeline.api.get(f"/auth/connectors/{uid}").json()
    assert (keys["key_id"], keys["previous_key_id"]) == (rotated, before)


def test_a_restarted_connector_keeps_its_identity_through_its_key_file(pipeline: Pipeline) -> None:
    uid = pipeline.connector["uuid"]
    key_id = pipeline.api.get(f"/auth/connectors/{uid}").json()["key_id"]
    key_file = pipeline.root / "filesystem.key"
    assert key_file.stat().st_mode & 0o777 == 0o600
    pipeline.fs.stop()  # it unregisters; its identity stays
    pipeline.fs.start()
    pipeline.fs.wait_healthy(pipeline.connector["url"] + "/readyz", timeout=60)  # its signed heartbeat passed
    assert pipeline.api.get(f"/auth/connectors/{uid}").json()["key_id"] == key_id
    (pipeline.asset / "after-restart.txt").write_bytes(b"fine")
    assert pipeline.result(pipeline.submit("after-restart.txt"))["verdict"] == "Benign"


def test_a_1x_style_connector_needs_a_scoped_token_to_come_back_after_a_restart(pipeline: Pipeline) -> None:
    """No key file, no pair in memory after a restart: what a DSX-Connect 1.x connector does."""
    asset = pipeline.root / "legacy-asset"
    asset.mkdir()
    for n in range(3):
        (asset / f"l{n}.txt").write_bytes(b"legacy %d" % n)
    port = free_port()
    url = f"http://127.0.0.1:{port}/filesystem-connector"
    env = base_env(
        DSXCONNECTOR_DSX_CONNECT_URL=pipeline.core_url, DSXCONNECTOR_CONNECTOR_URL=url,
        DSXCONNECTOR_ASSET=str(asset), DSXCONNECTOR_HEARTBEAT_INTERVAL_S="1", DSXCONNECTOR_MONITOR="false",
    )  # fmt: skip
    legacy = ServiceProcess(
        f"sec-legacy-{port}", uvicorn_argv("connectors.filesystem.app:app", port), env, pipeline.logs_dir
    )
    try:
        legacy.start().wait_healthy(
            url + "/readyz", timeout=60
        )  # first registration: the fleet token creates it
        legacy.stop()
        legacy.start()  # the fleet token alone cannot take the existing uuid back
        wait_for(lambda: "409" in legacy.log_tail(80), timeout=30, what="the fleet token's 409")
        # the 409 can be logged while uvicorn is still binding its port: wait until it answers
        readyz = wait_for(
            lambda: httpx.get(url + "/readyz", timeout=5), timeout=30, what="the connector to listen"
        )
        assert readyz.status_code == 503
        legacy.stop()
        minted = pipeline.api.post("/auth/enrollment-tokens", json={"connector_name": "filesystem-connector"})
        legacy.env = {**env, "DSXCONNECTOR_ENROLLMENT_TOKEN": minted.json()["token"]}
        for _ in range(2):  # with a scoped token: every restart re-registers and receives its pair
            legacy.start().wait_healthy(url + "/readyz", timeout=60)
            legacy.stop()
        legacy.start().wait_healthy(url + "/readyz", timeout=60)
        uid = next(c["uuid"] for c in pipeline.api.get("/connectors/list").json() if c["url"] == url)
        job_id = pipeline.api.post(f"/connectors/full_scan/{uid}").json()["job_id"]

        def finished() -> dict[str, Any] | None:
            job = pipeline.api.get(f"/scan/jobs/{job_id}").json()
            return job if job["status"] == "completed" else None

        job = wait_for(finished, timeout=60, what="the legacy connector's full scan")
        assert job["processed"] == 3 and job["verdicts"]["Benign"] == 3  # type: ignore[index]
    finally:
        legacy.stop()


def test_a_revoked_connector_gets_nothing_more(pipeline: Pipeline) -> None:
    uid = pipeline.connector["uuid"]
    assert pipeline.api.post(f"/auth/connectors/{uid}/revoke").status_code == 200
    wait_for(lambda: "403" in pipeline.fs.log_tail(50) or "revoked" in pipeline.fs.log_tail(50), timeout=15,
             what="the connector's next registration to be refused")  # fmt: skip
    assert uid not in [c["uuid"] for c in pipeline.api.get("/connectors/list").json()]
    refused = pipeline.api.post(
        "/scan/request", json={"connector": pipeline.connector, "location": "x", "metainfo": "x"}
    )
    assert refused.status_code == 404  # no longer registered: nothing is queued for it
    assert pipeline.api.post(f"/auth/connectors/{uid}/reinstate").status_code == 200
    wait_for(lambda: uid in [c["uuid"] for c in pipeline.api.get("/connectors/list").json()], timeout=15,
             what="re-enrollment after reinstatement")  # fmt: skip
    (pipeline.asset / "after.txt").write_bytes(b"fine")
    assert pipeline.result(pipeline.submit("after.txt"))["verdict"] == "Benign"
    assert str(uuid.UUID(uid)) == uid
