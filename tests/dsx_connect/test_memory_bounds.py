"""Per-item Redis state is freed as items finish: what stays of a finished item is one bit (real Redis)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import redis

from dsx_connect import keys
from dsx_connect.jobs.done import MAX_DONE_BIT, done_bit
from dsx_connect.state.jobs import JobStore
from dsx_connect.state.results import ResultStore
from shared.models import EventConnector, EventFileInfo, ScanResultEvent, ScanTask
from tests.support.redis_db import flushed_db

pytestmark = pytest.mark.integration


@pytest.fixture
def client(redis_url: str) -> Iterator[redis.Redis]:
    with flushed_db(redis_url, 6) as conn:
        yield conn


def _tasks(job_id: str, count: int, numbered: bool = True) -> list[ScanTask]:
    return [
        ScanTask(
            id=f"{job_id}-r{n}", connector_uuid="c1", location=f"f{n}.bin", metainfo=f"f{n}.bin",
            job_id=job_id, job_item_id=str(n) if numbered else None,
        )
        for n in range(1, count + 1)
    ]  # fmt: skip


def _events(tasks: list[ScanTask]) -> list[ScanResultEvent]:
    return [
        ScanResultEvent(
            scan_request_id=t.id, job_id=t.job_id, connector=EventConnector(name="fs", uuid="c1"),
            location=t.location, verdict="Benign", file_info=EventFileInfo(size_in_bytes=10),
        )
        for t in tasks
    ]  # fmt: skip


def _request_keys(client: redis.Redis) -> list[str]:
    return list(client.scan_iter(match=f"{keys.PREFIX}:req:*", count=1000))


def test_finished_items_of_a_full_scan_keep_one_bit_each_and_no_key(client: redis.Redis) -> None:
    jobs, results = JobStore(client), ResultStore(client, retain=10, request_ttl_s=600)
    job_id = jobs.create("c1", "fs")
    tasks = _tasks(job_id, 300)
    assert jobs.record_accepted(tasks, ttl_s=600) == {job_id: 300}
    assert len(_request_keys(client)) == 300 and client.hlen(keys.job_pending(job_id)) == 300
    jobs.enqueue_done(job_id, 300)

    for start in range(0, 300, 50):
        batch = tasks[start : start + 50]
        results.store_many(_events(batch), [t.job_item_id for t in batch])

    assert jobs.get(job_id)["status"] == "completed"
    assert _request_keys(client) == [], "a finished item kept a per-request key"
    assert not client.exists(keys.job_pending(job_id)) and not client.exists(keys.job_due(job_id))
    assert client.bitcount(keys.job_done(job_id)) == 300
    assert 0 < client.ttl(keys.job_done(job_id)) <= client.ttl(keys.job(job_id))
    assert client.hlen(keys.RESULTS) == 10  # retention kept the newest ten results

    # the bits are the tombstones: a resubmitted batch and a redelivered result batch count nothing
    assert jobs.record_accepted(tasks[:100], ttl_s=600) == {}
    assert results.store_many(_events(tasks[:100]), [t.job_item_id for t in tasks[:100]]) == [False] * 100
    assert jobs.get(job_id)["processed"] == 300 and results.stats()["total"] == 300
    assert _request_keys(client) == []


def test_a_bitmap_costs_a_bit_per_item_where_keys_cost_a_hundred_bytes(client: redis.Redis) -> None:
    jobs, results = JobStore(client), ResultStore(client, retain=1, request_ttl_s=600)
    numbered, unnumbered = jobs.create("c1", "fs"), jobs.create("c1", "fs")
    for job_id, flag in ((numbered, True), (unnumbered, False)):
        tasks = _tasks(job_id, 2000, numbered=flag)
        jobs.record_accepted(tasks, ttl_s=600)
        results.store_many(_events(tasks), [t.job_item_id for t in tasks])
    bitmap = client.memory_usage(keys.job_done(numbered)) or 0
    tombstones = [key for key in _request_keys(client) if key.startswith(f"{keys.PREFIX}:req:{unnumbered}")]
    assert len(tombstones) == 2000, "requests without a position keep their tombstone key"
    per_key = sum(client.memory_usage(key) or 0 for key in tombstones[:50]) / 50
    assert bitmap < 2000 / 8 + 200
    assert per_key * 2000 > 100 * bitmap


def test_skipped_items_of_a_cancelled_job_are_marked_by_their_bit(client: redis.Redis) -> None:
    jobs = JobStore(client)
    job_id = jobs.create("c1", "fs")
    tasks = _tasks(job_id, 4)
    jobs.record_accepted(tasks, ttl_s=600)
    jobs.transition(job_id, "cancel")
    ids, items = [t.id for t in tasks], [t.job_item_id for t in tasks]
    assert jobs.add_skipped(job_id, ids, ttl_s=600, job_item_ids=items) == 4
    assert jobs.add_skipped(job_id, ids, ttl_s=600, job_item_ids=items) == 0  # redelivered
    assert jobs.get(job_id)["skipped"] == 4
    assert _request_keys(client) == [] and client.bitcount(keys.job_done(job_id)) == 4
    assert not client.exists(keys.job_pending(job_id))


@pytest.mark.unit
@pytest.mark.parametrize(
    ("job_item_id", "bit"),
    [("1", 1), ("42", 42), (str(MAX_DONE_BIT), MAX_DONE_BIT), (str(MAX_DONE_BIT + 1), 0), ("0", 0),
     ("-3", 0), ("abc", 0), ("²", 0), ("", 0), (None, 0), ("1" * 40, 0), ("07", 0), ("00", 0)],
)  # fmt: skip
def test_only_a_bounded_numeric_position_gets_a_bit(job_item_id: str | None, bit: int) -> None:
    assert done_bit(job_item_id) == bit


# ---- a position far past the items finished so far -------------------------------------------------

FAR = str(MAX_DONE_BIT)  # "67108864": one SETBIT there allocated an 8 MiB bitmap
BITMAP_BOUND = 65536  # bytes: what a job of a few items may hold in its bitmaps at most


def _far_tasks(count: int) -> list[ScanTask]:
    """One item in each of ``count`` jobs a connector names (``amp-1``, ...), each at the far position."""
    return [
        ScanTask(
            id=f"amp-{n}-r", connector_uuid="c1", location=f"f{n}.bin", metainfo=f"f{n}.bin",
            job_id=f"amp-{n}", job_item_id=FAR,
        )
        for n in range(1, count + 1)
    ]  # fmt: skip


def _bitmap_bytes(client: redis.Redis, job_id: str) -> int:
    return int(client.strlen(keys.job_done(job_id))) + int(client.strlen(keys.job_skipped(job_id)))


@pytest.mark.parametrize("accepting", [False, True], ids=["scanned", "served-at-intake"])
def test_a_far_position_allocates_no_bitmap_and_its_item_counts_once(
    client: redis.Redis, accepting: bool
) -> None:
    jobs, results = JobStore(client), ResultStore(client, retain=1, request_ttl_s=600)
    tasks = _far_tasks(3)
    jobs.ensure_all([(t.job_id, "c1", "fs", "full_scan") for t in tasks])  # created by their requests
    if not accepting:  # else stored at the intake, unchanged (the scan cache): accepted in the same step
        assert jobs.record_accepted(tasks, ttl_s=600) == {t.job_id: 1 for t in tasks}
    items = [t.job_item_id for t in tasks]

    assert results.store_many(_events(tasks), items, accepting=accepting) == [True] * 3
    for task in tasks:
        assert _bitmap_bytes(client, task.job_id) <= BITMAP_BOUND, "one result allocated a large bitmap"
        view = jobs.get(task.job_id) or {}
        assert (view["enqueued"], view["processed"]) == (1, 1)
    assert results.stats()["total"] == 3
    assert client.hlen(keys.RESULTS) == 1  # retention dropped the others: their tombstones remain

    # resubmitted (a lost answer), redelivered: each is known finished and counts nothing again
    assert jobs.record_accepted(tasks, ttl_s=600) == {}
    assert results.store_many(_events(tasks), items, accepting=accepting) == [False] * 3
    assert jobs.triage(tasks) == ({t.id for t in tasks}, set()), "a finished item would be scanned again"
    for task in tasks:
        view = jobs.get(task.job_id) or {}
        assert (view["enqueued"], view["processed"]) == (1, 1)
        assert _bitmap_bytes(client, task.job_id) <= BITMAP_BOUND
    assert results.stats()["total"] == 3


def test_a_far_position_skipped_by_a_cancelled_job_allocates_no_bitmap(client: redis.Redis) -> None:
    jobs, results = JobStore(client), ResultStore(client, retain=1, request_ttl_s=600)
    (task,) = _far_tasks(1)
    jobs.ensure_all([(task.job_id, "c1", "fs", "full_scan")])
    jobs.record_accepted([task], ttl_s=600)
    jobs.transition(task.job_id, "cancel")

    assert jobs.add_skipped(task.job_id, [task.id], ttl_s=600, job_item_ids=[FAR]) == 1
    assert jobs.add_skipped(task.job_id, [task.id], ttl_s=600, job_item_ids=[FAR]) == 0  # redelivered
    assert _bitmap_bytes(client, task.job_id) <= BITMAP_BOUND
    assert (jobs.get(task.job_id) or {})["skipped"] == 1

    # a copy being scanned when the job was cancelled brings its verdict: it takes the skip's place
    assert results.store_many(_events([task]), [FAR]) == [True]
    assert results.store_many(_events([task]), [FAR]) == [False]
    view = jobs.get(task.job_id) or {}
    assert (view["processed"], view["skipped"]) == (1, 0)
    assert _bitmap_bytes(client, task.job_id) <= BITMAP_BOUND


def test_an_item_kept_by_its_key_stays_finished_once_the_bitmap_grows_past_its_position(
    client: redis.Redis,
) -> None:
    jobs, results = JobStore(client), ResultStore(client, retain=1, request_ttl_s=600)
    job_id = jobs.create("c1", "fs")
    ahead, near, farther = (
        ScanTask(id=f"{job_id}-r{n}", connector_uuid="c1", location=f"f{n}.bin", job_id=job_id, job_item_id=str(n))
        for n in (40_000, 30_000, 40_008)
    )  # fmt: skip
    jobs.record_accepted([ahead, near, farther], ttl_s=600)
    for task in (ahead, near, farther):  # the bitmap grows a little with each, past ``ahead`` at last
        assert results.store_many(_events([task]), [task.job_item_id]) == [True]
    assert client.strlen(keys.job_done(job_id)) * 8 > 40_000
    assert client.getbit(keys.job_done(job_id), 40_000) == 0, "``ahead`` was too far when it finished"

    assert jobs.record_accepted([ahead], ttl_s=600) == {}
    assert results.store_many(_events([ahead]), [ahead.job_item_id]) == [False]
    assert jobs.triage([ahead, near, farther]) == ({ahead.id, near.id, farther.id}, set())
    view = jobs.get(job_id) or {}
    assert (view["enqueued"], view["processed"]) == (3, 3) and results.stats()["total"] == 3
