"""The intake's fast path: unchanged items are accepted and stored by the API, with no task."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import redis

from dsx_connect import keys
from dsx_connect.cache.identity import ScannerIdentity
from dsx_connect.cache.intake import serve_unchanged
from dsx_connect.cache.settings import ScanCacheSettings
from dsx_connect.cache.step import ScanCache
from dsx_connect.state.jobs import JobStore
from dsx_connect.state.results import ResultStore
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


def test_unchanged_items_without_an_action_are_stored_and_the_rest_is_left_to_scan_in_order(
    client: redis.Redis,
) -> None:
    jobs = JobStore(client)
    cache = ScanCache(
        ScanCacheSettings(), RedisIndex(client, 1000), ScannerIdentity(lambda: {"identity": "i1"}, 60)
    )
    first = jobs.create("c1")
    items = [scanned(1, first, "Benign"), scanned(2, first, "Malicious"), scanned(3, first, "Benign")]
    cache.remember(items, scanned_under="i1")  # answers without an identity: the probe's before the scan
    stored: list[list[ItemOutcome]] = []

    rescan = jobs.create("c1")
    tasks = [scan_task(n, rescan) for n in range(1, 6)] + [scan_task(6, rescan, version=None)]
    rest = serve_unchanged(cache, tasks, {"c1": CONNECTOR}, jobs, ["Malicious"], stored.append)

    # a cached Malicious file goes to the scan step, which serves it from the index and acts again
    assert [t.id for t in rest] == ["r2", "r4", "r5", "r6"], (
        "misses (and items without a version) are scanned"
    )
    assert [[o.task.id for o in batch] for batch in stored] == [["r1", "r3"]]
    outcome = stored[0][0]
    assert outcome.verdict is not None and (outcome.verdict.model_extra or {}).get("cached") is True


def test_items_stored_at_intake_are_accepted_with_their_result_once_and_complete_the_job(
    client: redis.Redis,
) -> None:
    jobs = JobStore(client)
    results = ResultStore(client, retain=1000)
    job = jobs.create("c1")
    served = [scanned(n, job, "Benign") for n in (1, 2, 3)]
    for outcome in served:  # as the index serves them
        outcome.task.job_item_id = str(outcome.task.id[1:])
    # r3 was accepted by an earlier submission of the batch whose answer was lost (still pending)
    jobs.record_accepted([served[2].task], ttl_s=3600)
    events = [o.event_dict("t") for o in served]
    items = [o.task.job_item_id for o in served]

    assert results.store_many(events, items, accepting=True) == [True, True, True]
    view = jobs.get(job) or {}
    assert (view["enqueued"], view["processed"]) == (3, 3), "r3 is not accepted twice"
    assert client.hlen(keys.job_pending(job)) == 0, "nothing is left pending"

    # the connector resubmits the batch (its answer was lost again): nothing counts twice
    assert results.store_many(events, items, accepting=True) == [False, False, False]
    assert jobs.record_accepted([o.task for o in served], ttl_s=3600) == {}
    view = jobs.get(job) or {}
    assert (view["enqueued"], view["processed"], view["status"]) == (3, 3, "running")
    assert jobs.enqueue_done(job, 3) is True, "every accepted item has its result"
    assert (jobs.get(job) or {})["status"] == "completed"


def test_a_paused_cancelled_or_forced_job_gets_no_fast_path(client: redis.Redis) -> None:
    jobs = JobStore(client)
    cache = ScanCache(
        ScanCacheSettings(), RedisIndex(client, 1000), ScannerIdentity(lambda: {"identity": "i1"}, 60)
    )
    cache.remember([scanned(1, jobs.create("c1"), "Benign")], scanned_under="i1")
    sent: list[list[ItemOutcome]] = []
    paused, cancelled, forced = jobs.create("c1"), jobs.create("c1"), jobs.create("c1", force=True)
    jobs.transition(paused, "pause")
    jobs.transition(cancelled, "cancel")
    for job in (paused, cancelled, forced):
        rest = serve_unchanged(
            cache, [scan_task(1, job)], {"c1": CONNECTOR}, jobs, ["Malicious"], sent.append
        )
        assert [t.id for t in rest] == ["r1"], f"the scan step decides for job {job}"
    assert sent == []


def test_an_unknown_scanner_identity_serves_nothing(client: redis.Redis) -> None:
    jobs = JobStore(client)
    known = ScanCache(
        ScanCacheSettings(), RedisIndex(client, 1000), ScannerIdentity(lambda: {"identity": "i1"}, 60)
    )
    known.remember([scanned(1, jobs.create("c1"), "Benign")], scanned_under="i1")

    def unreachable() -> object:
        raise ValueError("no /version")

    blind = ScanCache(ScanCacheSettings(), RedisIndex(client, 1000), ScannerIdentity(unreachable, 60))
    job = jobs.create("c1")
    rest = serve_unchanged(blind, [scan_task(1, job)], {"c1": CONNECTOR}, jobs, [], lambda o: None)
    assert [t.id for t in rest] == ["r1"]
