"""The intake's fast path: unchanged items go from the API straight to the result or action step."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest
import redis

from dsx_connect.cache.identity import ScannerIdentity
from dsx_connect.cache.intake import serve_unchanged
from dsx_connect.cache.settings import ScanCacheSettings
from dsx_connect.cache.step import ScanCache
from dsx_connect.state.jobs import JobStore
from dsx_connect.state.scan_cache import RedisIndex
from dsx_connect.workers.outcome import ConnectorRef, ItemOutcome
from shared.models import DsxaVerdict, ItemActionType, RegisteredConnector, ScanTask
from tests.support.redis_db import flushed_db

pytestmark = pytest.mark.integration

CONNECTOR = RegisteredConnector(
    uuid="c1", name="fs", url="http://127.0.0.1:1/fs", item_action=ItemActionType.MOVE, status="ready"
)


@pytest.fixture
def client(redis_url: str) -> Iterator[redis.Redis]:
    with flushed_db(redis_url, 8) as conn:
        yield conn


def scan_task(n: int, job: str, version: str | None = "v1") -> ScanTask:
    return ScanTask(id=f"r{n}", connector_uuid="c1", location=f"f{n}.txt", job_id=job, item_version=version)


def scanned(n: int, job: str, verdict: str) -> ItemOutcome:
    return ItemOutcome(
        task=scan_task(n, job),
        connector=ConnectorRef.of(CONNECTOR),
        verdict=DsxaVerdict.model_validate({"verdict": verdict, "scan_guid": f"g{n}"}),
        item_version="v1",
    )


def test_hits_go_to_the_result_or_action_step_and_the_rest_is_published_in_order(client: redis.Redis) -> None:
    jobs = JobStore(client)
    cache = ScanCache(
        ScanCacheSettings(), RedisIndex(client, 1000), ScannerIdentity(lambda: {"identity": "i1"}, 60)
    )
    first = jobs.create("c1")
    cache.remember([scanned(1, first, "Benign"), scanned(2, first, "Malicious"), scanned(3, first, "Benign")])
    sent: list[tuple[str, list[dict[str, Any]]]] = []

    def send(stage: str, payloads: list[Any]) -> None:
        sent.append((stage, [json.loads(p) for p in payloads]))

    rescan = jobs.create("c1")
    tasks = [scan_task(n, rescan) for n in range(1, 6)] + [scan_task(6, rescan, version=None)]
    rest = serve_unchanged(cache, tasks, {"c1": CONNECTOR}, jobs, ["Malicious"], send)

    assert [t.id for t in rest] == ["r4", "r5", "r6"], "misses (and items without a version) are scanned"
    stages = {stage: [p["task"]["id"] for p in payloads] for stage, payloads in sent}
    assert stages == {"action": ["r2"], "result": ["r1", "r3"]}, "a cached Malicious file is acted on again"
    outcome = ItemOutcome.model_validate(sent[1][1][0])
    assert outcome.verdict is not None and (outcome.verdict.model_extra or {}).get("cached") is True


def test_a_paused_cancelled_or_forced_job_gets_no_fast_path(client: redis.Redis) -> None:
    jobs = JobStore(client)
    cache = ScanCache(
        ScanCacheSettings(), RedisIndex(client, 1000), ScannerIdentity(lambda: {"identity": "i1"}, 60)
    )
    cache.remember([scanned(1, jobs.create("c1"), "Benign")])
    sent: list[str] = []
    paused, cancelled, forced = jobs.create("c1"), jobs.create("c1"), jobs.create("c1", force=True)
    jobs.transition(paused, "pause")
    jobs.transition(cancelled, "cancel")
    for job in (paused, cancelled, forced):
        rest = serve_unchanged(
            cache, [scan_task(1, job)], {"c1": CONNECTOR}, jobs, ["Malicious"], lambda s, p: sent.append(s)
        )
        assert [t.id for t in rest] == ["r1"], f"the scan step decides for job {job}"
    assert sent == []


def test_an_unknown_scanner_identity_serves_nothing(client: redis.Redis) -> None:
    jobs = JobStore(client)
    known = ScanCache(
        ScanCacheSettings(), RedisIndex(client, 1000), ScannerIdentity(lambda: {"identity": "i1"}, 60)
    )
    known.remember([scanned(1, jobs.create("c1"), "Benign")])

    def unreachable() -> object:
        raise ValueError("no /version")

    blind = ScanCache(ScanCacheSettings(), RedisIndex(client, 1000), ScannerIdentity(unreachable, 60))
    job = jobs.create("c1")
    rest = serve_unchanged(blind, [scan_task(1, job)], {"c1": CONNECTOR}, jobs, [], lambda s, p: None)
    assert [t.id for t in rest] == ["r1"]
