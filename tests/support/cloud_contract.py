"""The contract every object-store connector passes against its real emulator (STYLE §6: one suite).

A connector's test folder subclasses :class:`CloudConnectorContract` and provides a session
``store`` fixture: a :class:`Store`, the storage's SDK pointed at its emulator. The suite checks
SPEC §5 in two ways:

- in process (marker ``integration``): the connector's app under ``TestClient`` against the
  emulator: streaming reads, refused locations, paging and filters, estimate and repo_check,
  clear errors for a missing bucket and for refused credentials;
- end to end (marker ``e2e``): a real connector process registered with the real core, Celery
  worker and dsxa_lite (:func:`running_core`, one for the whole session): a full scan's verdicts,
  each action checked in storage through the SDK, a failed action reported, and a notification
  posted to ``/webhook/event`` getting a new object scanned without a full scan.
"""

from __future__ import annotations

import hashlib
import json
import os
import uuid
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar, Protocol

import anyio
import httpx
import pytest

from shared.connector import Connector, create_connector_app
from tests.dsxa_lite.samples import MARKER, eicar
from tests.support.procs import PYTHON, ServiceProcess, base_env, free_port, uvicorn_argv, wait_for

try:  # processes run with auth on (tests.support.procs.base_env): the test talks to the core as an operator
    from tests.support.auth import OPERATOR_HEADERS
except ImportError:  # pragma: no cover - a checkout without DSX-HMAC
    OPERATOR_HEADERS = {}

API = "/dsx-connect/api/v1"
QUARANTINE = "dsxconnect-quarantine"


class Store(Protocol):
    """One storage as the contract sees it: its connector, and its SDK pointed at the emulator."""

    package: str  # connectors.<package>
    name: str  # connector name = route prefix
    quarantine_setting: str  # settings field naming the quarantine bucket / container ("": the same one)
    page_size_setting: str  # settings field of the listing page size

    def connector_env(self) -> dict[str, str]:
        """Environment of a connector process that reaches the emulator."""

    def connector(self, **settings: Any) -> Connector:
        """The connector in this process, reaching the emulator (DSX-HMAC off: the tests call it directly)."""

    def create_bucket(self, bucket: str) -> None: ...

    def put(self, bucket: str, key: str, data: bytes) -> None: ...

    def get(self, bucket: str, key: str) -> bytes | None:
        """The object's bytes, None if there is none."""

    def keys(self, bucket: str, prefix: str = "") -> list[str]: ...

    def tags(self, bucket: str, key: str) -> dict[str, str]:
        """What a ``tag`` action wrote (tags or metadata)."""

    def notify(self, connector_url: str, bucket: str, key: str, size: int) -> httpx.Response:
        """Post the storage's notification of a new object to the connector's ``/webhook/event``."""

    def bad_credentials(self) -> AbstractContextManager[dict[str, Any]]:
        """Connector settings whose credentials the emulator refuses, while the block runs."""


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


# --------------------------------------------------------------------------- the real core


@dataclass
class Core:
    """The real core API, one Celery worker for all queues and dsxa_lite, on free ports."""

    url: str
    api: httpx.Client

    def connector(self, url: str) -> dict[str, Any]:
        """The registration of the connector at ``url``, once it has registered."""

        def registered() -> dict[str, Any] | None:
            return next((c for c in self.api.get("/connectors/list").json() if c["url"] == url), None)

        return wait_for(registered, timeout=30, what=f"{url} to register")  # type: ignore[return-value]

    def submit(self, connector: dict[str, Any], location: str, **extra: Any) -> str:
        body = {"connector": connector, "location": location, "metainfo": location, **extra}
        response = self.api.post("/scan/request", json=body)
        assert response.status_code == 202, response.text
        return response.json()["id"]

    def result(self, request_id: str) -> dict[str, Any]:
        def done() -> dict[str, Any] | None:
            response = self.api.get(f"/scan/results/{request_id}")
            return response.json() if response.status_code == 200 else None

        return wait_for(done, timeout=30, what=f"result of {request_id}")  # type: ignore[return-value]

    def results(self, **query: str) -> list[dict[str, Any]]:
        return self.api.get("/scan/results", params={"limit": 1000, **query}).json()["items"]

    def full_scan(self, connector_uuid: str) -> dict[str, Any]:
        """Start a full scan through the core and wait for its job to complete."""
        response = self.api.post(f"/connectors/full_scan/{connector_uuid}")
        assert response.status_code == 202, response.text
        job_id = response.json()["job_id"]

        def completed() -> dict[str, Any] | None:
            job = self.api.get(f"/scan/jobs/{job_id}").json()
            assert job["status"] not in ("failed", "cancelled"), job
            return job if job["status"] == "completed" else None

        return wait_for(completed, timeout=60, interval=0.1, what=f"job {job_id}")  # type: ignore[return-value]


@contextmanager
def running_core(redis_url: str, log_dir: Path) -> Iterator[Core]:
    """dsxa_lite, the core API and one worker consuming every queue (as tests/dsx_connect/workers)."""
    from dsx_connect.queues import ALL_QUEUES

    db_url = redis_url.rsplit("/", 1)[0] + "/11"
    import redis

    redis.Redis.from_url(db_url).flushdb()
    dsxa_port, core_port = free_port(), free_port()
    env = base_env(
        DSXCONNECT_REDIS_URL=db_url,
        DSXCONNECT_SCANNER__SCAN_BINARY_URL=f"http://127.0.0.1:{dsxa_port}/scan/binary/v2",
        DSXCONNECT_WORKERS__MAX_RETRIES="2",
        DSXCONNECT_WORKERS__RETRY_BACKOFF_S="0.2",
        DSXCONNECT_WORKERS__RETRY_BACKOFF_MAX_S="0.5",
    )
    worker_argv = [
        PYTHON, "-m", "celery", "-A", "dsx_connect.workers.celery_app:celery_app", "worker",
        "-Q", ",".join(ALL_QUEUES), "--pool", "prefork", "--concurrency", "2",
        "-n", f"cloud{core_port}@%h", "--loglevel", "INFO",
    ]  # fmt: skip
    dsxa = ServiceProcess(
        f"cloud-dsxa-{dsxa_port}", uvicorn_argv("dsxa_lite.app:app", dsxa_port), base_env(), log_dir
    )
    core = ServiceProcess(
        f"cloud-core-{core_port}", uvicorn_argv("dsx_connect.app:app", core_port), env, log_dir
    )
    worker = ServiceProcess(f"cloud-worker-{core_port}", worker_argv, env, log_dir)
    url = f"http://127.0.0.1:{core_port}"
    api = httpx.Client(base_url=url + API, timeout=15.0, headers=OPERATOR_HEADERS)
    try:
        for proc in (dsxa, core, worker):
            proc.start()
        dsxa.wait_healthy(f"http://127.0.0.1:{dsxa_port}/healthz", timeout=60)
        core.wait_healthy(f"{url}/healthz", timeout=60)
        wait_for(
            lambda: "ready." in worker.log_tail(200), timeout=90, what=f"celery worker ({worker.log_path})"
        )
        yield Core(url, api)
    finally:
        api.close()
        for proc in (worker, core, dsxa):
            proc.stop()


_shared_core: Core | None = None


@pytest.fixture(scope="session")
def core(redis_url: str, logs_dir: Path) -> Iterator[Core]:
    """One core for every connector folder of the session (each folder's conftest imports this)."""
    global _shared_core
    if _shared_core is not None:
        yield _shared_core
        return
    with running_core(redis_url, logs_dir) as started:
        _shared_core = started
        try:
            yield started
        finally:
            _shared_core = None


# --------------------------------------------------------------------------- the suite


@dataclass
class Deployment:
    """A connector process watching ``bucket/incoming``, quarantining into ``quarantine_bucket``."""

    url: str
    registration: dict[str, Any]
    bucket: str
    quarantine_bucket: str

    @property
    def uuid(self) -> str:
        return self.registration["uuid"]


SAMPLE = {
    "incoming/readme.txt": (b"plain text, nothing to see\n", "Benign"),
    "incoming/docs/report.csv": (b"id,amount\n1,20\n2,22\n", "Benign"),
    "incoming/docs/deep/notes.md": (b"# notes\n\n- ship the connector\n", "Benign"),
    "incoming/inbox/eicar.com": (eicar(), "Malicious"),
    "incoming/docs/invoice.txt": (b"Invoice 2024-117\n" + MARKER + b"\nTotal: 1 EUR\n", "Malicious"),
}


class BucketFixtures:
    """A fresh bucket per test, and connectors on the store's emulator, closed after the test."""

    @pytest.fixture
    def bucket(self, store: Store) -> str:
        name = unique("dsx")
        store.create_bucket(name)
        return name

    @pytest.fixture
    def make_connector(self, store: Store) -> Iterator[Callable[..., Connector]]:
        made: list[Connector] = []

        def make(**settings: Any) -> Connector:
            made.append(store.connector(**{"auth": {"enabled": False}, **settings}))
            return made[-1]

        yield make
        for connector in made:
            anyio.run(connector.aclose)


class CloudConnectorContract(BucketFixtures):
    """SPEC §5 for an object-store connector; subclass it in the connector's test folder."""

    STREAMED_BYTES: ClassVar[int] = 3 * 1024 * 1024 + 7

    def client(self, store: Store, connector: Connector) -> httpx.AsyncClient:
        """The connector's app in process (no lifespan: it neither registers nor heartbeats)."""
        transport = httpx.ASGITransport(app=create_connector_app(connector))
        return httpx.AsyncClient(transport=transport, base_url=f"http://test/{store.name}/")

    @pytest.fixture(scope="class")
    @classmethod
    def deployment(cls, store: Store, core: Core, logs_dir: Path) -> Iterator[Deployment]:
        bucket = unique("dsx-scan")
        # a store without a quarantine bucket setting (Graph) quarantines into a folder of the same one
        quarantine = unique("dsx-quarantine") if store.quarantine_setting else bucket
        store.create_bucket(bucket)
        if quarantine != bucket:
            store.create_bucket(quarantine)
        for key, (data, _) in SAMPLE.items():
            store.put(bucket, key, data)
        store.put(bucket, "incoming/cache/skipped.tmp", b"filtered out")
        store.put(bucket, "elsewhere/outside.txt", b"outside the asset")
        port = free_port()
        url = f"http://127.0.0.1:{port}/{store.name}"
        env = {
            "DSXCONNECTOR_DSX_CONNECT_URL": core.url,
            "DSXCONNECTOR_CONNECTOR_URL": url,
            "DSXCONNECTOR_ASSET": f"{bucket}/incoming",
            "DSXCONNECTOR_FILTER": "-*.tmp",
            "DSXCONNECTOR_ITEM_ACTION": "move",
            "DSXCONNECTOR_ITEM_ACTION_MOVE_METAINFO": QUARANTINE,
            # the contract posts the storage's event unsigned; each connector's test_webhook_auth
            # checks the sender verification itself
            "DSXCONNECTOR_WEBHOOK__VERIFY": "false",
            **store.connector_env(),
        }
        if store.quarantine_setting:
            env[f"DSXCONNECTOR_{store.quarantine_setting.upper()}"] = quarantine
        deployment_env = getattr(store, "deployment_env", None)  # stores whose asset is not bucket/prefix
        if deployment_env is not None:
            env |= deployment_env(bucket, url)
        proc = ServiceProcess(
            f"{store.package}-{port}",
            uvicorn_argv(f"connectors.{store.package}.app:app", port),
            base_env(**env),
            logs_dir,
        ).start()
        try:
            proc.wait_healthy(f"{url}/readyz", timeout=60)
            yield Deployment(url, core.connector(url), bucket, quarantine)
        finally:
            proc.stop()

    # ---- in process, against the emulator --------------------------------------------------

    @pytest.mark.integration
    @pytest.mark.anyio
    async def test_read_file_answers_small_objects_whole_and_streams_large_ones(
        self, store: Store, bucket: str, make_connector: Callable[..., Connector]
    ) -> None:
        big = os.urandom(self.STREAMED_BYTES)
        store.put(bucket, "in/small.txt", b"hello")
        store.put(bucket, "in/big/blob.bin", big)
        connector = make_connector(asset=f"{bucket}/in")
        content = await connector.read("in/big/blob.bin")
        assert content.chunks is not None and content.data is None and content.size == len(big)
        await content.chunks.aclose()  # type: ignore[attr-defined]
        http = self.client(store, connector)
        small = await http.post("read_file", json={"location": "in/small.txt", "metainfo": "s"})
        assert small.status_code == 200 and small.content == b"hello"
        assert small.headers["content-type"] == "application/octet-stream"
        large = await http.post("read_file", json={"location": "in/big/blob.bin", "metainfo": "b"})
        assert large.status_code == 200
        # streamed with the size the storage named as its Content-Length: a stream cut short is a cut
        # answer to the core (and raises in the connector), never a shorter object scanned as the whole
        assert large.headers.get("content-length") == str(len(big)), large.headers
        assert hashlib.sha256(large.content).digest() == hashlib.sha256(big).digest()
        missing = await http.post("read_file", json={"location": "in/nothing.bin", "metainfo": "m"})
        assert missing.status_code == 404 and missing.json()["status"] == "error"

    @pytest.mark.integration
    @pytest.mark.anyio
    async def test_locations_outside_the_asset_are_refused(
        self, store: Store, bucket: str, make_connector: Callable[..., Connector]
    ) -> None:
        for key in ("in/ok.txt", "secret.txt", "other/secret.txt", f"in/{QUARANTINE}/kept.exe"):
            store.put(bucket, key, b"x")
        connector = make_connector(asset=f"{bucket}/in", item_action_move_metainfo=f"in/{QUARANTINE}")
        http = self.client(store, connector)
        refused = [
            "in/../secret.txt", "../secret.txt", "/in/ok.txt", "other/secret.txt", "secret.txt",
            f"in/{QUARANTINE}/kept.exe", "in/a\x00b", f"{bucket}/in/ok.txt",
        ]  # fmt: skip
        for location in refused:
            # 422: the body itself refused (a NUL is no location any store can hold)
            read = await http.post("read_file", json={"location": location, "metainfo": "x"})
            assert read.status_code in (400, 403, 422) and read.json()["status"] == "error", location
            act = await http.put(
                "item_action",
                json={"location": location, "metainfo": "x", "requested_action": {"type": "delete"}},
            )
            assert act.status_code in (400, 403, 422) and act.json()["status"] == "error", location
        assert (
            store.get(bucket, "secret.txt") == b"x" and store.get(bucket, f"in/{QUARANTINE}/kept.exe") == b"x"
        )
        ok = await http.post("read_file", json={"location": "in/ok.txt", "metainfo": "x"})
        assert ok.content == b"x"

    @pytest.mark.integration
    @pytest.mark.anyio
    async def test_listing_follows_every_page_and_applies_the_filter(
        self, store: Store, bucket: str, make_connector: Callable[..., Connector]
    ) -> None:
        wanted = [f"scan/f{n:02d}.pdf" for n in range(7)] + ["scan/deep/er/x.pdf"]
        for key in [*wanted, "scan/skip.tmp", "scan/folder/", "outside.pdf", f"scan/{QUARANTINE}/old.pdf"]:
            store.put(bucket, key, b"%PDF")
        connector = make_connector(
            asset=f"{bucket}/scan",
            filter="-*.tmp",
            item_action_move_metainfo=f"scan/{QUARANTINE}",
            **{store.page_size_setting: 2},
        )

        items = [item async for item in connector.enumerate()]
        assert sorted(item.location for item in items) == sorted(wanted)
        assert all(item.metainfo == f"{bucket}/{item.location}" and item.size == 4 for item in items)
        # each item's version as read answers it (the scan cache keys on it: listed none, a rescan of an
        # unchanged bucket read and scanned every object again)
        for item in items[:3]:
            assert item.version and (await connector.read(item.location)).version == item.version

    @pytest.mark.integration
    @pytest.mark.anyio
    async def test_estimate_and_repo_check_describe_the_asset(
        self, store: Store, bucket: str, make_connector: Callable[..., Connector]
    ) -> None:
        for n in range(4):
            store.put(bucket, f"p/{n}.txt", b"x" * (n + 1))
        http = self.client(store, make_connector(asset=f"{bucket}/p"))
        assert (await http.get("estimate")).json() == {"count": 4, "confidence": "exact", "bytes": 10}
        check = (await http.get("repo_check", params={"preview": 2})).json()
        assert check["status"] == "success" and bucket in check["message"]
        assert len(check["preview"]) == 2 and all(key.startswith("p/") for key in check["preview"])

    @pytest.mark.integration
    @pytest.mark.anyio
    async def test_a_missing_bucket_is_a_clear_error_in_repo_check_and_readyz(
        self, store: Store, make_connector: Callable[..., Connector]
    ) -> None:
        missing = unique("missing")
        http = self.client(store, make_connector(asset=f"{missing}/p"))
        check = await http.get("repo_check")
        assert check.status_code == 404 and check.json()["status"] == "error"
        assert missing in check.json()["message"] and "does not exist" in check.json()["message"]
        ready = await http.get("readyz")
        assert ready.status_code == 503 and "asset" in ready.json()["failing"]
        assert missing in ready.json()["message"]

    @pytest.mark.integration
    @pytest.mark.anyio
    async def test_refused_credentials_are_a_clear_error_in_repo_check_and_readyz(
        self, store: Store, bucket: str, make_connector: Callable[..., Connector]
    ) -> None:
        with store.bad_credentials() as settings:
            http = self.client(store, make_connector(asset=bucket, **settings))
            check = await http.get("repo_check")
            assert check.status_code == 403 and check.json()["status"] == "error"
            assert "credentials" in check.json()["message"]
            ready = await http.get("readyz")
            assert ready.status_code == 503 and "asset" in ready.json()["failing"]
            assert "credentials" in ready.json()["message"]

    @pytest.mark.integration
    @pytest.mark.anyio
    async def test_a_failed_action_answers_an_error_with_its_reason(
        self, store: Store, bucket: str, make_connector: Callable[..., Connector]
    ) -> None:
        store.put(bucket, "in/bad.com", b"x")
        http = self.client(store, make_connector(asset=f"{bucket}/in", item_action="delete"))
        gone = await http.put("item_action", json={"location": "in/gone.com", "metainfo": "x"})
        assert (
            gone.status_code == 404
            and gone.json()["status"] == "error"
            and gone.json()["item_action"] == "delete"
        )
        outside = {"type": "move", "destination": {"prefix": "elsewhere/"}}
        moved = await http.put(
            "item_action", json={"location": "in/bad.com", "metainfo": "x", "requested_action": outside}
        )
        assert moved.status_code == 403 and "outside" in moved.json()["message"]
        assert store.get(bucket, "in/bad.com") == b"x"

    @pytest.mark.integration
    @pytest.mark.anyio
    async def test_an_action_on_an_object_replaced_after_its_read_answers_412_and_touches_nothing(
        self, store: Store, bucket: str, make_connector: Callable[..., Connector]
    ) -> None:
        key = "in/replaced.com"
        store.put(bucket, key, b"the scanned bytes")
        http = self.client(store, make_connector(asset=f"{bucket}/in"))
        scanned = (await http.post("read_file", json={"location": key, "metainfo": "x"})).headers[
            "X-Item-Version"
        ]
        store.put(bucket, key, b"replaced after the scan")
        for kind in ("delete", "move", "tag", "movetag"):
            answer = await http.put(
                "item_action",
                json={
                    "location": key,
                    "metainfo": "x",
                    "item_version": scanned,
                    "requested_action": {"type": kind},
                },
            )
            assert answer.status_code == 412 and answer.json()["error"] == "item_changed", (kind, answer.text)
        assert store.get(bucket, key) == b"replaced after the scan"
        assert store.keys(bucket, QUARANTINE) == [] and "Verdict" not in store.tags(bucket, key)

        batch = await http.post("read_files", json={"items": [{"location": key}, {"location": "in/none"}]})
        current, missing = json.loads(batch.headers["X-Item-Versions"])
        assert current and current != scanned and missing is None
        moved = await http.put(
            "item_action",
            json={
                "location": key,
                "metainfo": "x",
                "item_version": current,
                "requested_action": {"type": "move"},
            },
        )
        assert moved.status_code == 200, moved.text
        assert store.get(bucket, f"{QUARANTINE}/{key}") == b"replaced after the scan"
        gone = await http.put(
            "item_action",
            json={
                "location": key,
                "metainfo": "x",
                "item_version": current,
                "requested_action": {"type": "delete"},
            },
        )
        assert gone.status_code == 404 and gone.json()["error"] == "not_found"

    @pytest.mark.integration
    @pytest.mark.anyio
    async def test_a_stale_version_is_refused_by_the_storage_itself(
        self, store: Store, bucket: str, make_connector: Callable[..., Connector]
    ) -> None:
        """The delete primitive sends the version as a precondition (If-Match, ifGenerationMatch):
        the storage refuses it even when the check before acting is skipped."""
        if not getattr(store, "honours_preconditions", True):
            pytest.skip("the emulator ignores the precondition (the check before acting covers it)")
        key = "in/raced.com"
        store.put(bucket, key, b"scanned")
        connector: Any = make_connector(asset=f"{bucket}/in")
        scanned = await connector.head(bucket, key)
        store.put(bucket, key, b"replaced between the check and the delete")
        with pytest.raises(Exception) as refused:
            await connector.delete(bucket, key, scanned)
        assert connector.classify_error(refused.value).status_code == 412
        assert store.get(bucket, key) == b"replaced between the check and the delete"

    # ---- end to end: real connector process, core, workers and dsxa_lite -------------------

    @pytest.mark.e2e
    def test_full_scan_gives_the_right_verdicts_and_quarantines_the_malicious(
        self, store: Store, core: Core, deployment: Deployment
    ) -> None:
        d = deployment
        expected = {key for key in store.keys(d.bucket, "incoming/") if not key.endswith(".tmp")}
        job = core.full_scan(d.uuid)
        assert job["enqueued_total"] == job["processed"] == len(expected)
        verdicts = {r["location"]: r["verdict"] for r in core.results(job=job["job_id"])}
        assert set(verdicts) == expected
        for key, (data, verdict) in SAMPLE.items():
            assert verdicts[key] == verdict, key
            quarantined = store.get(d.quarantine_bucket, f"{QUARANTINE}/{key}")
            if verdict == "Malicious":
                assert store.get(d.bucket, key) is None and quarantined == data, key
            else:
                assert store.get(d.bucket, key) == data and quarantined is None, key
        assert store.get(d.bucket, "elsewhere/outside.txt") == b"outside the asset"

        # a rescan of the unchanged objects is served by the scan cache (the listing gives each
        # object's version): none is read or scanned again, each still gets its result (Graph's
        # second full scan lists only what changed: nothing here)
        if getattr(store, "incremental_full_scan", False):
            return
        again = core.full_scan(d.uuid)
        left = {key for key, (_, verdict) in SAMPLE.items() if verdict != "Malicious"} & expected
        rescanned = {r["location"]: r for r in core.results(job=again["job_id"])}
        assert set(rescanned) >= left
        assert all(rescanned[key]["scanner"].get("cached") for key in left), rescanned

    @pytest.mark.e2e
    @pytest.mark.parametrize("action", ["delete", "move", "tag", "movetag"])
    def test_each_action_is_applied_in_storage(
        self, store: Store, core: Core, deployment: Deployment, action: str
    ) -> None:
        d = deployment
        key = f"incoming/actions/{unique(action)}.com"
        store.put(d.bucket, key, eicar())
        result = core.result(core.submit(d.registration, key, requested_action={"type": action}))
        assert result["verdict"] == "Malicious"
        assert result["action"]["requested"] == action and result["action"]["status"] == "success"
        assert result["action"]["applied"] is True, result["action"]
        source, moved = store.get(d.bucket, key), store.get(d.quarantine_bucket, f"{QUARANTINE}/{key}")
        if action == "delete":
            assert source is None and moved is None
        elif action == "tag":
            assert source == eicar() and store.tags(d.bucket, key)["Verdict"] == "Malicious"
        else:
            assert source is None and moved == eicar()
        if action == "movetag":
            assert store.tags(d.quarantine_bucket, f"{QUARANTINE}/{key}")["Verdict"] == "Malicious"

    @pytest.mark.e2e
    def test_a_failed_action_is_reported_in_the_result(
        self, store: Store, core: Core, deployment: Deployment
    ) -> None:
        d = deployment
        key = f"incoming/actions/{unique('refused')}.com"
        store.put(d.bucket, key, eicar())
        outside = {"type": "move", "destination": {"prefix": "elsewhere/"}}
        result = core.result(core.submit(d.registration, key, requested_action=outside))
        assert result["verdict"] == "Malicious"
        assert result["action"]["status"] == "error" and result["action"]["applied"] is False
        assert "outside" in result["action"]["message"]
        assert store.get(d.bucket, key) == eicar()

    @pytest.mark.e2e
    def test_a_notification_gets_a_new_object_scanned_without_a_full_scan(
        self, store: Store, core: Core, deployment: Deployment
    ) -> None:
        d = deployment
        key, data = f"incoming/pushed/{unique('new')}.txt", b"dropped later\n" + MARKER
        store.put(d.bucket, key, data)
        answer = store.notify(d.url, d.bucket, key, len(data))
        if getattr(store, "notification_submits", True):
            assert answer.status_code == 200 and answer.json()["submitted"] == 1, answer.text
        else:  # the notification wakes the connector's monitor, which reads what changed (Graph delta)
            assert answer.status_code == 202, answer.text

        def scanned() -> dict[str, Any] | None:
            return next((r for r in core.results(connector=d.uuid) if r["location"] == key), None)

        result: dict[str, Any] = wait_for(scanned, timeout=30, what=f"a result for {key}")  # type: ignore[assignment]
        assert result["verdict"] == "Malicious" and result["metainfo"] == f"{d.bucket}/{key}"
        wait_for(
            lambda: store.get(d.quarantine_bucket, f"{QUARANTINE}/{key}") == data, timeout=30, what="the move"
        )
        assert store.get(d.bucket, key) is None

    # ---- make up CONNECTOR=<package> -------------------------------------------------------

    @pytest.mark.e2e
    def test_make_up_runs_the_connector_on_its_emulator_and_scans_the_sample(
        self, store: Store, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        from devstack.scan import down, up
        from devstack.settings import StackConfig

        for variable in ("DSXCONNECT_AUTH__ENABLED", "DSXCONNECTOR_AUTH__ENABLED"):
            monkeypatch.setenv(variable, "false")  # as tests/support/local_stack.py: not about auth

        knobs = (
            "DSX_REDIS_PORT",
            "DSX_DSXA_PORT",
            "DSX_CORE_PORT",
            "DSX_CONNECTOR_PORT",
            "DSX_EMULATOR_PORT",
        )
        env = {"DSX_RUN_DIR": str(tmp_path / "run"), "DSX_CONNECTOR": store.package}
        ports: set[int] = set()
        while len(ports) < len(knobs):  # free_port() may hand out a port twice
            ports.add(free_port())
        cfg = StackConfig.from_env(env | {knob: str(port) for knob, port in zip(knobs, ports, strict=True)})
        lines: list[str] = []
        try:
            result = up(cfg, out=lines.append)
        finally:
            down(cfg.run_dir, out=lines.append)
        shown = "\n".join(lines)
        assert result.summary == "scanned 12: 10 Benign, 2 Malicious; quarantined 2", shown
        assert "uploaded 12 sample files" in shown and f"{cfg.connector_url}/webhook/event" in shown
