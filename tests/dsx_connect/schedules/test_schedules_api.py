"""Schedules end to end: two real API replicas with their schedulers on one real Redis, real
filesystem connectors, the real scanner (``dsxa_lite``) whose rules change under them.

A slot is made due the way it happens in production after an outage: the schedule was set long
before and no replica ran since (written through ``ScheduleStore`` with a past creation time), so
nothing here waits for a minute boundary.
"""

from __future__ import annotations

import logging
import shutil
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
import redis

from dsx_connect import keys
from dsx_connect.schedules.models import ScheduleSpec
from dsx_connect.state.schedule_lease import current_leader
from dsx_connect.state.schedules import ScheduleStore
from tests.support.auth import OPERATOR_HEADERS
from tests.support.procs import ServiceProcess, base_env, free_port, redis_server, uvicorn_argv, wait_for

pytestmark = pytest.mark.integration

API = "/dsx-connect/api/v1"
RULES = Path(__file__).resolve().parents[3] / "dsxa_lite" / "rules" / "default.yar"
NEW_RULE = 'rule schedule_test_marker { strings: $a = "dsx-schedule-test-marker" condition: $a }\n'


@dataclass
class Stack:
    redis: redis.Redis
    cores: list[ServiceProcess]
    core_urls: list[str]
    dsxa_url: str
    rules_dir: Path
    connectors: list[str]  # uuids

    def api(self, index: int = 0) -> httpx.Client:
        return httpx.Client(base_url=self.core_urls[index] + API, timeout=10.0, headers=OPERATOR_HEADERS)

    def leader_index(self) -> int | None:
        holder = current_leader(self.redis)
        for i, proc in enumerate(self.cores):
            if proc.alive() and proc.proc is not None and holder and holder.endswith(f":{proc.proc.pid}"):
                return i
        return None

    def jobs(self, connector_uuid: str, trigger: str) -> list[dict[str, str]]:
        found = []
        for job_id in self.redis.zrange(keys.JOBS_INDEX, 0, -1):
            job = self.redis.hgetall(keys.job(job_id))
            if job.get("connector_uuid") == connector_uuid and job.get("trigger") == trigger:
                found.append(job)
        return found

    def lease_renewals(self, count: int) -> None:
        """Wait until the lease was renewed (or taken) ``count`` more times: each tick of the leader
        renews it (its TTL goes up between two reads), and every replica ticks as often."""

        def lease() -> tuple[int, str | None]:
            pipe = self.redis.pipeline()
            pipe.pttl(keys.SCHEDULER_LEADER)
            pipe.get(keys.SCHEDULER_LEADER)
            ttl, token = pipe.execute()
            return int(ttl), token

        last = [lease()]
        for _ in range(count):

            def renewed() -> bool:
                now, before = lease(), last[0]
                last[0] = now
                return now[1] != before[1] or now[0] > before[0]

            wait_for(renewed, timeout=10, interval=0.02, what="a lease renewal")


def _connector(asset: Path, core_url: str, logs_dir: Path) -> ServiceProcess:
    port = free_port()
    env = base_env(
        DSXCONNECTOR_ASSET=str(asset),
        DSXCONNECTOR_DSX_CONNECT_URL=core_url,
        DSXCONNECTOR_CONNECTOR_URL=f"http://127.0.0.1:{port}/filesystem-connector",
        DSXCONNECTOR_MONITOR="false",
    )
    return ServiceProcess(
        f"sched-fs-{port}", uvicorn_argv("connectors.filesystem.app:app", port), env, logs_dir
    )


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory, logs_dir: Path) -> Iterator[Stack]:
    root = tmp_path_factory.mktemp("schedules-stack")
    rules_dir = root / "rules"
    rules_dir.mkdir()
    shutil.copy(RULES, rules_dir / "default.yar")
    with redis_server(root / "redis") as (redis_url, _):
        conn = redis.Redis.from_url(redis_url, decode_responses=True)
        dsxa_port = free_port()
        dsxa = ServiceProcess(
            f"sched-dsxa-{dsxa_port}",
            uvicorn_argv("dsxa_lite.app:app", dsxa_port),
            base_env(DSXA_LITE_RULES_DIR=str(rules_dir)),
            logs_dir,
        )
        core_env = base_env(
            DSXCONNECT_REDIS_URL=redis_url,
            DSXCONNECT_SCANNER__SCAN_BINARY_URL=f"http://127.0.0.1:{dsxa_port}/scan/binary/v2",
            DSXCONNECT_SCHEDULER__POLL_S="0.2",
            DSXCONNECT_SCHEDULER__LEASE_TTL_S="1",
            DSXCONNECT_SCHEDULER__SCANNER_POLL_S="0.2",
        )
        ports = [free_port(), free_port()]
        cores = [
            ServiceProcess(f"sched-core-{p}", uvicorn_argv("dsx_connect.app:app", p), core_env, logs_dir)
            for p in ports
        ]
        procs = [dsxa, *cores]
        try:
            for proc in procs:
                proc.start()
            dsxa.wait_healthy(f"http://127.0.0.1:{dsxa_port}/healthz")
            for proc, port in zip(cores, ports, strict=True):
                proc.wait_healthy(f"http://127.0.0.1:{port}/healthz")
            core_url = f"http://127.0.0.1:{ports[0]}"
            for i in range(3):
                asset = root / f"asset{i}"
                asset.mkdir()
                for n in range(3):
                    (asset / f"file{n}.txt").write_text(f"benign {i}/{n}\n")
                procs.append(_connector(asset, core_url, logs_dir).start())
            with httpx.Client(base_url=core_url + API, headers=OPERATOR_HEADERS, timeout=10) as api:
                listed: list[dict[str, Any]] = wait_for(  # type: ignore[assignment]
                    lambda: (found := api.get("/connectors/list").json()) and len(found) == 3 and found,
                    timeout=60,
                    what="three connectors registered",
                )
            yield Stack(
                conn, cores, [f"http://127.0.0.1:{p}" for p in ports], f"http://127.0.0.1:{dsxa_port}",
                rules_dir, [c["uuid"] for c in listed],
            )  # fmt: skip
        finally:
            for proc in reversed(procs):
                proc.stop()
            conn.close()


def test_a_bad_cron_is_refused_naming_the_field(stack: Stack) -> None:
    with stack.api() as api:
        answer = api.put(f"/connectors/schedule/{stack.connectors[0]}", json={"cron": "0 2 * 13 *"})
        assert answer.status_code == 422
        assert "cron: " in answer.json()["message"] and "month" in answer.json()["message"]
        answer = api.put(
            f"/connectors/schedule/{stack.connectors[0]}", json={"cron": "0 2 * * *", "timezone": "X"}
        )
        assert answer.status_code == 422 and "timezone" in answer.json()["message"]
        assert api.get(f"/connectors/schedule/{stack.connectors[0]}").status_code == 404


def test_schedules_are_set_read_listed_and_deleted_by_operators_only(stack: Stack) -> None:
    target = stack.connectors[2]
    with stack.api() as api:
        assert api.put(f"/connectors/schedule/{uuid.uuid4()}", json={"cron": "0 2 * * *"}).status_code == 404
        answer = api.put(
            f"/connectors/schedule/{target}", json={"cron": "30 2 * * *", "timezone": "Europe/Berlin"}
        )
        assert answer.status_code == 200, answer.text
        body = answer.json()
        assert (body["cron"], body["timezone"], body["connector_uuid"]) == (
            "30 2 * * *",
            "Europe/Berlin",
            target,
        )
        assert body["next_run"].endswith(("T00:30:00Z", "T01:30:00Z"))  # 02:30 in Berlin, summer or winter
        assert body["connector_name"] and body["last_slot"] is None
    with stack.api(1) as other:  # any replica answers from Redis
        assert other.get(f"/connectors/schedule/{target}").json()["cron"] == "30 2 * * *"
        listed = other.get("/connectors/schedules").json()
        assert [s["connector_uuid"] for s in listed["schedules"]] == [target]
        assert listed["scheduler"]["enabled_here"] is True and listed["scheduler"]["leader"]
    anonymous = httpx.get(f"{stack.core_urls[0]}{API}/connectors/schedules", timeout=10)
    assert anonymous.status_code == 401
    with stack.api() as api:
        assert api.delete(f"/connectors/schedule/{target}").status_code == 200
        assert api.get(f"/connectors/schedule/{target}").status_code == 404
        assert api.delete(f"/connectors/schedule/{target}").status_code == 404


def test_a_connector_restart_keeps_its_schedule(stack: Stack) -> None:
    """A connector unregisters at every graceful stop (a rolling update too) and comes back under
    its uuid: unregistering deleted the operator's schedule, so no scheduled scan ran again."""
    restarted = str(uuid.uuid4())
    body = {
        "name": "restarted",
        "uuid": restarted,
        "url": "http://127.0.0.1:9/filesystem-connector",
        "asset": "/x",
    }
    spec = {"cron": "0 2 * * *", "rescan_on_scanner_change": True}
    with stack.api() as api:
        assert api.post("/connectors/register", json=body).status_code == 201
        assert api.put(f"/connectors/schedule/{restarted}", json=spec).status_code == 200
        assert api.delete(f"/connectors/unregister/{restarted}").status_code == 200  # its graceful stop
        assert api.post("/connectors/register", json=body).status_code == 201  # back
        kept = api.get(f"/connectors/schedule/{restarted}")
        assert kept.status_code == 200
        assert {k: kept.json()[k] for k in spec} == spec
        assert api.delete(f"/connectors/schedule/{restarted}").status_code == 200  # the operator's call
        assert api.get(f"/connectors/schedule/{restarted}").status_code == 404
    assert not stack.redis.exists(keys.schedule_state(restarted))


def test_a_due_slot_starts_one_job_across_two_replicas(stack: Stack) -> None:
    target = stack.connectors[0]
    wait_for(lambda: stack.leader_index() is not None, timeout=10, what="a scheduler leader")
    ScheduleStore(stack.redis).put(target, ScheduleSpec(cron="0 * * * *"), now=time.time() - 7200)
    wait_for(lambda: stack.jobs(target, "schedule"), timeout=20, what="the scheduled job")
    stack.lease_renewals(5)  # both replicas ticked several times more
    (job,) = stack.jobs(target, "schedule")
    with stack.api() as api:
        wait_for(
            lambda: api.get(f"/scan/jobs/{job['job_id']}").json()["enqueue_done"],
            timeout=20,
            what="the connector enumerating into the scheduled job",
        )
        view = api.get(f"/scan/jobs/{job['job_id']}").json()
        assert view["trigger"] == "schedule" and view["enqueued"] == 3
        schedule = api.get(f"/connectors/schedule/{target}").json()
        assert schedule["last_job_id"] == job["job_id"] and schedule["last_trigger"] == "schedule"
        assert schedule["last_slot"].endswith(":00:00Z")


def test_a_scanner_rules_change_rescans_each_flagged_connector_once(stack: Stack) -> None:
    flagged, plain = stack.connectors[:2], stack.connectors[2]
    with stack.api() as api:
        for target in flagged:
            answer = api.put(f"/connectors/schedule/{target}", json={"rescan_on_scanner_change": True})
            assert answer.status_code == 200, answer.text
        assert api.put(f"/connectors/schedule/{plain}", json={"cron": "0 3 * * *"}).status_code == 200
    identity = httpx.get(f"{stack.dsxa_url}/version", timeout=10).json()["identity"]
    wait_for(lambda: stack.redis.get(keys.SCANNER_IDENTITY) == identity, timeout=20, what="the identity seen")
    (stack.rules_dir / "marker.yar").write_text(NEW_RULE)
    reload = httpx.post(f"{stack.dsxa_url}/admin/reload", timeout=30)
    assert reload.status_code == 200, reload.text
    changed = httpx.get(f"{stack.dsxa_url}/version", timeout=10).json()["identity"]
    assert changed != identity
    for target in flagged:
        wait_for(lambda t=target: stack.jobs(t, "scanner_change"), timeout=20, what="the rescan")  # type: ignore[misc]
    wait_for(lambda: stack.redis.get(keys.SCANNER_IDENTITY) == changed, timeout=20, what="the new identity")
    stack.lease_renewals(5)
    assert [len(stack.jobs(t, "scanner_change")) for t in flagged] == [1, 1]
    assert stack.jobs(plain, "scanner_change") == []


def test_a_full_scan_an_operator_starts_is_marked_api(stack: Stack) -> None:
    with stack.api() as api:
        answer = api.post(f"/connectors/full_scan/{stack.connectors[1]}")
        assert answer.status_code == 202, answer.text
        assert api.get(f"/scan/jobs/{answer.json()['job_id']}").json()["trigger"] == "api"


def test_a_slot_of_a_connector_that_is_not_registered_is_recorded_not_started(stack: Stack) -> None:
    absent = str(uuid.uuid4())
    store = ScheduleStore(stack.redis)
    store.put(absent, ScheduleSpec(cron="0 * * * *"), now=time.time() - 7200)
    run = wait_for(lambda: store.run(absent).last_error, timeout=20, what="the failed start recorded")
    assert "not registered" in str(run)
    assert stack.jobs(absent, "schedule") == []


def test_the_scanner_identity_is_read_from_its_version_route(stack: Stack) -> None:
    from dsx_connect.schedules.identity import ScannerIdentity
    from dsx_connect.settings import ScannerSettings

    def read(base: str) -> str | None:
        reader = ScannerIdentity(ScannerSettings(scan_binary_url=f"{base}/scan/binary/v2"))
        try:
            return reader()
        finally:
            reader.close()

    assert read(stack.dsxa_url) == httpx.get(f"{stack.dsxa_url}/version", timeout=10).json()["identity"]
    assert read(f"http://127.0.0.1:{free_port()}") is None  # nobody there: unknown
    assert read(stack.core_urls[0]) is None  # no /version route there: unknown


def test_a_scanner_behind_a_path_prefix_is_read_at_the_version_url_the_cache_uses(
    stack: Stack, caplog: pytest.LogCaptureFixture
) -> None:
    """The scheduler asked {origin}/version whatever DSXCONNECT_SCAN_CACHE__VERSION_URL said: a
    scanner behind a path prefix had no identity for it, so no rescan on a scanner change ever
    started, and nothing above debug said why."""
    from dsx_connect.schedules.identity import ScannerIdentity
    from dsx_connect.schedules.runner import build_scheduler
    from dsx_connect.settings import ScannerSettings, Settings

    prefixed = f"{stack.dsxa_url}/not-here/scan/binary/v2"  # its origin has /version, this prefix not
    settings = Settings.model_validate(
        {"scanner": {"scan_binary_url": prefixed}, "scan_cache": {"version_url": f"{stack.dsxa_url}/version"}}
    )
    reader = build_scheduler(settings, stack.redis).identity
    assert isinstance(reader, ScannerIdentity) and reader.url == f"{stack.dsxa_url}/version"
    assert reader() == httpx.get(f"{stack.dsxa_url}/version", timeout=10).json()["identity"]
    reader.close()
    wrong = ScannerIdentity(ScannerSettings(), url=f"{stack.core_urls[0]}/version")
    with caplog.at_level(logging.WARNING, logger="dsx_connect.schedules.identity"):
        assert wrong() is None and wrong() is None
    assert [r.message for r in caplog.records].count(caplog.records[0].message) == 1  # said once
    assert "DSXCONNECT_SCAN_CACHE__VERSION_URL" in caplog.records[0].message
    wrong.close()


def test_a_killed_leader_is_replaced_and_the_next_due_slot_runs_once(stack: Stack) -> None:
    target = stack.connectors[2]
    wait_for(lambda: stack.leader_index() is not None, timeout=10, what="a scheduler leader")
    index = stack.leader_index()
    assert index is not None
    stack.cores[index].kill()
    survivor = 1 - index
    wait_for(lambda: stack.leader_index() == survivor, timeout=20, what="the other replica taking over")
    ScheduleStore(stack.redis).put(target, ScheduleSpec(cron="*/30 * * * *"), now=time.time() - 7200)
    wait_for(lambda: stack.jobs(target, "schedule"), timeout=20, what="the job of the next slot")
    stack.lease_renewals(5)
    assert len(stack.jobs(target, "schedule")) == 1
