"""Result, stats and job stores against a real Redis: exactly-once counting, retention, completion."""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest
import redis

from dsx_connect import keys
from dsx_connect.jobs import recovery
from dsx_connect.queues import SCAN_REQUEST_QUEUE
from dsx_connect.state.jobs import InvalidTransition, JobNotFound, JobStore
from dsx_connect.state.results import ResultStore
from shared.models import EventAction, EventConnector, EventError, EventFileInfo, ScanResultEvent, ScanTask
from tests.support.redis_db import flushed_db

pytestmark = pytest.mark.integration


@pytest.fixture
def client(redis_url: str) -> Iterator[redis.Redis]:
    with flushed_db(redis_url, 5) as conn:
        yield conn


def event(
    n: int, job: str = "j1", verdict: str = "Benign", connector: str = "c1", **extra: object
) -> ScanResultEvent:
    return ScanResultEvent(
        scan_request_id=f"r{n}", job_id=job, connector=EventConnector(name="fs", uuid=connector),
        location=f"f{n}.txt", verdict=verdict, file_info=EventFileInfo(size_in_bytes=10), **extra,
    )  # fmt: skip


def test_a_result_stored_twice_is_counted_once(client: redis.Redis) -> None:
    results = ResultStore(client, retain=100)
    assert results.store_many([event(1)]) == [True]
    assert results.store_many([event(1)]) == [False]
    stats = results.stats()
    assert stats["total"] == 1 and stats["verdicts"]["Benign"] == 1 and stats["bytes_scanned"] == 10


def test_errors_and_actions_are_counted(client: redis.Redis) -> None:
    results = ResultStore(client, retain=100)
    results.store_many(
        [
            event(
                1, verdict="Malicious", action=EventAction(requested="move", applied=True, status="success")
            ),
            event(2, verdict="Not Scanned", error=EventError(kind="exhausted", message="down")),
        ]
    )
    stats = results.stats()
    assert stats["actions"] == {"move": 1}
    assert stats["errors"] == 1
    assert stats["verdicts"]["Malicious"] == 1 and stats["verdicts"]["Not Scanned"] == 1


def test_retention_drops_the_oldest_results(client: redis.Redis) -> None:
    results = ResultStore(client, retain=3)
    results.store_many([event(n) for n in range(5)])
    assert results.get("r0") is None and results.get("r1") is None
    assert results.get("r4") is not None
    items, total = results.query()
    assert [i["scan_request_id"] for i in items] == ["r4", "r3", "r2"]
    assert total == 3
    assert results.stats()["total"] == 5  # counters keep the history


def test_query_filters_and_pages(client: redis.Redis) -> None:
    results = ResultStore(client, retain=100)
    results.store_many(
        [
            event(n, verdict="Malicious" if n % 3 == 0 else "Benign", job="j1" if n < 6 else "j2")
            for n in range(10)
        ]
    )
    malicious, total = results.query(verdict="Malicious")
    assert [i["scan_request_id"] for i in malicious] == ["r9", "r6", "r3", "r0"] and total == 4
    both, _ = results.query(verdict="Malicious", job="j1")
    assert [i["scan_request_id"] for i in both] == ["r3", "r0"]
    page, _ = results.query(limit=3, offset=3)
    assert [i["scan_request_id"] for i in page] == ["r6", "r5", "r4"]
    assert results.query(connector="other")[0] == []


def test_job_completes_when_enumeration_is_done_and_all_processed(client: redis.Redis) -> None:
    jobs, results = JobStore(client), ResultStore(client, retain=100)
    job_id = jobs.create("c1", "fs")
    pipe = client.pipeline()
    jobs.add_accepted(pipe, job_id, 3)
    pipe.execute()
    results.store_many([event(1, job=job_id), event(2, job=job_id)])
    assert jobs.get(job_id)["status"] == "running"
    assert jobs.enqueue_done(job_id, 3) is False
    results.store_many([event(3, job=job_id), event(3, job=job_id)])
    job = jobs.get(job_id)
    assert job["status"] == "completed"
    assert job["processed"] == 3 and job["enqueued_total"] == 3 and job["verdicts"] == {"Benign": 3}
    assert job["finished"] is not None


def test_enqueued_total_is_the_larger_of_reported_and_accepted(client: redis.Redis) -> None:
    jobs = JobStore(client)
    job_id = jobs.create("c1")
    pipe = client.pipeline()
    jobs.add_accepted(pipe, job_id, 5)
    pipe.execute()
    jobs.enqueue_done(job_id, 2)
    assert jobs.get(job_id)["enqueued_total"] == 5


def test_enqueue_done_after_all_results_completes_the_job(client: redis.Redis) -> None:
    jobs, results = JobStore(client), ResultStore(client, retain=100)
    job_id = jobs.create("c1")
    results.store_many([event(1, job=job_id)])
    assert jobs.enqueue_done(job_id, 1) is True
    assert jobs.get(job_id)["status"] == "completed"


def test_job_transitions_and_invalid_ones(client: redis.Redis) -> None:
    jobs = JobStore(client)
    job_id = jobs.create("c1")
    assert jobs.transition(job_id, "pause") == "running"
    assert jobs.flags(job_id) == (True, False)
    with pytest.raises(InvalidTransition) as info:
        jobs.transition(job_id, "pause")
    assert info.value.status == "paused"
    jobs.transition(job_id, "resume")
    jobs.transition(job_id, "cancel")
    assert jobs.flags(job_id) == (False, True)
    with pytest.raises(InvalidTransition):
        jobs.transition(job_id, "resume")
    with pytest.raises(JobNotFound):
        jobs.transition("nope", "pause")


def test_jobs_list_newest_first(client: redis.Redis) -> None:
    jobs = JobStore(client)
    first, second = jobs.create("c1"), jobs.create("c1")
    items, total = jobs.list()
    assert total == 2 and items[0]["job_id"] == second and items[1]["job_id"] == first


def test_a_failed_result_is_replaced_by_a_later_success_and_counts_move(client: redis.Redis) -> None:
    jobs, results = JobStore(client), ResultStore(client, retain=100)
    job_id = jobs.create("c1")
    failed = event(1, job=job_id, verdict="Not Scanned", error=EventError(kind="exhausted", message="down"))
    assert results.store_many([failed]) == [True]
    assert results.stats()["errors"] == 1
    fixed = event(
        1,
        job=job_id,
        verdict="Malicious",
        action=EventAction(requested="move", applied=True, status="success"),
    )
    assert results.store_many([fixed]) == [True]
    stats = results.stats()
    assert stats["total"] == 1 and stats["errors"] == 0
    assert stats["verdicts"]["Not Scanned"] == 0 and stats["verdicts"]["Malicious"] == 1
    assert stats["actions"] == {"move": 1}
    job = jobs.get(job_id)
    assert (
        job["processed"] == 1 and job["errors"] == 0 and job["verdicts"] == {"Not Scanned": 0, "Malicious": 1}
    )
    assert results.get("r1")["verdict"] == "Malicious"
    assert [i["scan_request_id"] for i in results.query(verdict="Malicious")[0]] == ["r1"]
    assert results.query(verdict="Not Scanned")[0] == []


def test_a_failed_result_replaced_within_the_same_batch_is_indexed_once_under_its_last_verdict(
    client: redis.Redis,
) -> None:
    """The script writes a new result's index entries after its loop: a replacement later in the same
    call must move the entry it has not written yet, and the pending entry ends once."""
    jobs, results = JobStore(client), ResultStore(client, retain=100)
    job_id = jobs.create("c1")
    failed = event(1, job=job_id, verdict="Not Scanned", error=EventError(kind="exhausted", message="down"))
    fixed = event(1, job=job_id, verdict="Malicious")
    assert results.store_many([failed, event(2, job=job_id), fixed]) == [True, True, True]
    stats = results.stats()
    assert stats["total"] == 2 and stats["errors"] == 0
    assert stats["verdicts"]["Malicious"] == 1 and stats["verdicts"]["Not Scanned"] == 0
    assert [i["scan_request_id"] for i in results.query(verdict="Malicious")[0]] == ["r1"]
    assert results.query(verdict="Not Scanned")[0] == []
    assert {i["scan_request_id"] for i in results.query(job=job_id)[0]} == {"r1", "r2"}
    assert client.zrange(keys.RESULTS_INDEX, 0, -1, withscores=True) == [("r1", 1.0), ("r2", 2.0)]
    assert client.get(keys.RESULTS_SEQ) == "2"
    job = jobs.get(job_id)
    assert job["processed"] == 2 and job["verdicts"] == {"Malicious": 1, "Benign": 1}


def test_a_successful_result_is_never_replaced(client: redis.Redis) -> None:
    results = ResultStore(client, retain=100)
    results.store_many([event(1, verdict="Benign")])
    assert results.store_many([event(1, verdict="Malicious")]) == [False]
    assert results.get("r1")["verdict"] == "Benign"
    assert results.stats()["verdicts"]["Malicious"] == 0


def test_dead_letters_are_listed_taken_and_expired(client: redis.Redis) -> None:
    from dsx_connect.state.dead_letters import DeadLetter, DeadLetterStore

    store = DeadLetterStore(client, retain_s=3600)
    letters = [
        DeadLetter(id=f"r{n}", stage="scan" if n else "action", reason="gave up", attempts=6, job_id="j",
                   connector_uuid="c", location=f"f{n}", payload={"id": f"r{n}"})
        for n in range(3)
    ]  # fmt: skip
    store.add_many(letters)
    stats = store.stats()
    assert stats["count"] == 3 and stats["by_stage"] == {"scan": 2, "action": 1, "result": 0}
    items, total = store.items(limit=2)
    assert total == 3 and len(items) == 2
    peeked = store.peek(["r1", "nope"])
    assert [letter.id for letter in peeked] == ["r1"]
    assert store.stats()["count"] == 3, "peeking removes nothing"
    assert store.remove(peeked) == 1
    assert store.stats()["count"] == 2
    # a letter written again (the requeued attempt failed anew) is not removed with the old one
    [r2] = store.peek(["r2"])
    store.add_many([r2.model_copy(update={"failed_at": "2999-01-01T00:00:00.000Z"})])
    assert store.remove([r2]) == 0 and store.stats()["count"] == 2
    client.zadd("dsxc:dlq:idx", {"r2": 1.0})  # pretend r2 failed long ago
    assert store.expire() == 1
    assert store.clear() == 1 and store.stats()["count"] == 0


def test_a_requeue_outlives_its_own_failure_being_stored_after_it(client: redis.Redis) -> None:
    """The operator requeues a scan letter while the item's failed result still waits in the result
    queue (or that store task is delivered again after the requeue). Storing that failure used to
    end the requeue and drop the letter: the requeued copy then looked finished and was never
    scanned. The requeue stays until the copy's own outcome replaces the failure."""
    from dsx_connect.jobs.requeue import requeue_letters
    from dsx_connect.state.dead_letters import DeadLetter, DeadLetterStore

    jobs, results = JobStore(client), ResultStore(client, retain=100)
    letters = DeadLetterStore(client, retain_s=3600)
    job_id = jobs.create("c1")
    task = ScanTask(id="r1", connector_uuid="c1", location="f1.txt", job_id=job_id, job_item_id="1")
    jobs.record_accepted([task], ttl_s=600)
    reason = "gave up after 3 attempts: scanner unreachable"
    letter = DeadLetter(
        id="r1", stage="scan", reason=reason, attempts=3, job_id=job_id, connector_uuid="c1",
        location="f1.txt", payload=task.model_dump(mode="json"),
    )  # fmt: skip
    letters.add_many([letter])
    sent: list[list[dict[str, object]]] = []
    requeue_letters(letters, [letter], 60, lambda stage, payloads: sent.append(payloads))
    assert len(sent) == 1
    failed = event(1, job=job_id, verdict="Not Scanned", error=EventError(kind="exhausted", message=reason))
    assert results.store_many([failed], ["1"]) == [True]  # the failure, stored after the requeue
    assert results.store_many([failed], ["1"]) == [False]  # and its task delivered again
    assert letters.peek(["r1"]) and client.zscore(keys.DEAD_LETTERS_REQUEUED, "r1") is not None
    assert jobs.triage([task]) == (set(), set()), "the requeued copy is scanned"
    assert results.store_many([event(1, job=job_id, verdict="Benign")], ["1"]) == [True]
    assert not letters.peek(["r1"]) and client.zscore(keys.DEAD_LETTERS_REQUEUED, "r1") is None
    view = jobs.get(job_id) or {}
    assert view["processed"] == 1 and view["verdicts"] == {"Benign": 1, "Not Scanned": 0}

    # a requeued copy that fails for good in another way (no new letter: a permanent error) ends
    # its requeue too: it is not sent again lease after lease
    second = ScanTask(id="r2", connector_uuid="c1", location="f2.txt", job_id=job_id, job_item_id="2")
    jobs.record_accepted([second], ttl_s=600)
    letter2 = letter.model_copy(
        update={"id": "r2", "location": "f2.txt", "payload": second.model_dump(mode="json")}
    )
    letters.add_many([letter2])
    assert results.store_many(
        [event(2, job=job_id, verdict="Not Scanned", error=EventError(kind="exhausted", message=reason))],
        ["2"],
    ) == [True]
    requeue_letters(letters, [letter2], 60, lambda stage, payloads: sent.append(payloads))
    gone = EventError(kind="permanent", message="item not found: 'f2.txt'")
    assert results.store_many([event(2, job=job_id, verdict="Not Scanned", error=gone)], ["2"]) == [True]
    assert not letters.peek(["r2"]) and client.zscore(keys.DEAD_LETTERS_REQUEUED, "r2") is None


def test_a_requeued_outcome_is_stored_even_after_retention_dropped_the_failure(client: redis.Redis) -> None:
    """Results retention may drop an item's failed result before the operator requeues its letter
    (letters are kept for days). The requeued copy's outcome used to be taken for an old duplicate
    and dropped with the letter: the new verdict never reached the results, the counts or the
    feeds. It takes the failure's place, its counts moved as for a failure still stored."""
    from dsx_connect.jobs.requeue import requeue_letters
    from dsx_connect.state.dead_letters import DeadLetter, DeadLetterStore

    jobs, results = JobStore(client), ResultStore(client, retain=2)
    letters = DeadLetterStore(client, retain_s=3600)
    job_id = jobs.create("c1")
    task = ScanTask(
        id="r1", connector_uuid="c1", location="f1.txt", job_id=job_id, job_item_id="1", size_in_bytes=10
    )
    jobs.record_accepted([task], ttl_s=600)
    reason = "gave up after 3 attempts: scanner unreachable"
    failed = event(1, job=job_id, verdict="Not Scanned", error=EventError(kind="exhausted", message=reason))
    letter = DeadLetter(
        id="r1", stage="scan", reason=reason, attempts=3, job_id=job_id, connector_uuid="c1",
        location="f1.txt", payload=task.model_dump(mode="json"),
    )  # fmt: skip
    letters.add_many([letter])
    assert results.store_many([failed], ["1"]) == [True]
    others = [event(n, job="other") for n in (2, 3)]
    assert results.store_many(others) == [True, True]  # retention (2) drops r1's failure
    assert results.get("r1") is None
    requeue_letters(letters, [letter], 60, lambda stage, payloads: None)
    assert jobs.triage([task]) == (set(), set()), "the requeued copy is scanned"
    assert results.store_many([event(1, job=job_id, verdict="Benign")], ["1"]) == [True]
    stored = results.get("r1")
    assert stored is not None and stored["verdict"] == "Benign"
    assert not letters.peek(["r1"]) and client.zscore(keys.DEAD_LETTERS_REQUEUED, "r1") is None
    view = jobs.get(job_id) or {}
    assert view["processed"] == 1 and view["errors"] == 0
    assert view["verdicts"] == {"Benign": 1, "Not Scanned": 0}
    assert results.store_many([event(1, job=job_id, verdict="Benign")], ["1"]) == [False]  # then a duplicate


def test_a_requeued_letter_stays_until_its_attempt_ends_and_a_lost_one_is_sent_again(
    client: redis.Redis,
) -> None:
    """Requeueing leases each letter: the letter goes when the result store stores the item's
    outcome, stays (as a new letter) when the attempt fails anew, and is sent again when its lease
    passes with neither, which is what a lost message looks like."""
    from dsx_connect.jobs.requeue import redispatch_expired_requeues, requeue_letters
    from dsx_connect.state.dead_letters import DeadLetter, DeadLetterStore

    store, results = DeadLetterStore(client, retain_s=3600), ResultStore(client, retain=100)
    letters = [
        DeadLetter(id=f"r{n}", stage=stage, reason="gave up", attempts=3, job_id="j", connector_uuid="c",
                   location=f"f{n}", payload={"id": f"r{n}"})
        for n, stage in ((1, "scan"), (2, "scan"), (3, "result"))
    ]  # fmt: skip
    store.add_many(letters)
    sent: list[tuple[str, list[str]]] = []

    def send(stage: str, payloads: list[dict[str, object]]) -> None:
        sent.append((stage, [str(p["id"]) for p in payloads]))

    now = time.time()
    assert requeue_letters(store, letters, 60, send) == ({"scan": 2, "action": 0, "result": 1}, [])
    assert sent == [("scan", ["r1", "r2"]), ("result", ["r3"])]
    # requeued again before those attempts finished (a double click, two operators): nothing sent twice
    assert requeue_letters(store, letters, 60, send) == ({"scan": 0, "action": 0, "result": 0}, letters)
    assert sent == [("scan", ["r1", "r2"]), ("result", ["r3"])]
    listed = {letter.id: letter for letter in store.items()[0]}
    assert all(letter.requeued_until and letter.requeued_until > now for letter in listed.values())
    assert store.stats()["requeued"] == 3 and store.stats()["count"] == 3, "requeued letters stay"

    results.store_many([event(1, verdict="Benign")])  # r1's attempt stored its outcome: its letter goes
    store.add_many([letters[1].model_copy(update={"reason": "failed anew"})])  # r2's failed again
    assert {letter.id for letter in store.items()[0]} == {"r2", "r3"}
    [r2] = store.peek(["r2"])
    assert r2.reason == "failed anew" and r2.requeued_until is None, "a new failure ends the lease"
    results.store_many(
        [event(2, verdict="Not Scanned", error=EventError(kind="exhausted", message="still failing"))]
    )
    assert store.peek(["r2"]), "the failed result of the new attempt does not take the new letter"

    sent.clear()  # r3's message was lost: nothing happened to it
    assert redispatch_expired_requeues(store, 60, send, now=now + 30) == 0
    assert redispatch_expired_requeues(store, 60, send, now=now + 61) == 1
    assert sent == [("result", ["r3"])]
    assert redispatch_expired_requeues(store, 60, send, now=now + 62) == 0, "the claim renewed its lease"
    assert store.clear() == 2 and store.stats()["requeued"] == 0


def test_intake_refuses_work_past_its_bounds(client: redis.Redis) -> None:
    from dsx_connect.intake import Backpressure, check_capacity
    from dsx_connect.settings import Settings

    settings = Settings(workers={"max_queued_batches": 3}, jobs={"max_in_flight": 10})
    check_capacity(client, settings, {"j1": 5})
    client.rpush("scan_request_queue", "a", "b", "c")
    with pytest.raises(Backpressure, match="queue is full"):
        check_capacity(client, settings, {"j1": 5})
    client.delete("scan_request_queue")
    client.hset("dsxc:job:j1", mapping={"accepted": 12, "processed": 4, "skipped": 1})
    with pytest.raises(Backpressure, match="7 items in flight"):
        check_capacity(client, settings, {"j1": 5})
    check_capacity(client, settings, {"j1": 3})


def test_intake_counts_every_unfinished_item_of_every_job_retrying_or_parked_too(client: redis.Redis) -> None:
    """The global bound counts the pending items of all active jobs, wherever they wait: an empty
    scan queue during a scanner outage (items parked on the breaker) does not open the gate."""
    from dsx_connect import intake
    from dsx_connect.intake import Backpressure, check_capacity
    from dsx_connect.settings import Settings

    intake._unfinished_seen.clear()  # read at most once a second per process: start afresh
    settings = Settings(jobs={"max_in_flight": 1000, "max_in_flight_total": 10})  # type: ignore[arg-type]
    jobs = JobStore(client)
    for job_id in ("ja", "jb"):
        jobs.create("c1", "fs", job_id=job_id)
        tasks = [t.model_copy(update={"id": f"{job_id}-{t.id}"}) for t in _tasks(job_id, 4)]
        jobs.record_accepted(tasks, ttl_s=600)  # none queued: parked, retrying, held
    assert client.llen("scan_request_queue") == 0
    check_capacity(client, settings, {"jc": 2})
    with pytest.raises(Backpressure, match="8 items are accepted and unfinished"):
        check_capacity(client, settings, {"jc": 3})


def test_replacing_a_failed_result_of_an_unknown_size(client: redis.Redis) -> None:
    results = ResultStore(client, retain=100)
    failed = event(1, verdict="Not Scanned", error=EventError(kind="exhausted", message="down"))
    failed.file_info.size_in_bytes = 0  # the size was never learnt
    results.store_many([failed])
    assert results.store_many([event(1, verdict="Benign")]) == [True]
    assert results.stats()["bytes_scanned"] == 10 and results.stats()["errors"] == 0


def test_skipped_items_are_counted_once_per_request_even_when_a_batch_is_redelivered(
    client: redis.Redis,
) -> None:
    jobs, results = JobStore(client), ResultStore(client, retain=100)
    job_id = jobs.create("c1", "fs")
    results.store_many([event(1, job=job_id)])  # already has its result: never a skip
    assert jobs.add_skipped(job_id, ["r1", "r2", "r3"], ttl_s=60) == 2
    assert jobs.add_skipped(job_id, ["r1", "r2", "r3"], ttl_s=60) == 0  # the same batch, redelivered
    assert jobs.add_skipped(job_id, ["r3", "r4"], ttl_s=60) == 1
    assert jobs.get(job_id)["skipped"] == 3
    assert 0 < client.ttl(keys.request_state("r2")) <= 60


def _tasks(job_id: str, count: int) -> list[ScanTask]:
    return [
        ScanTask(id=f"r{n}", connector_uuid="c1", location=f"f{n}.txt", metainfo=f"f{n}.txt", job_id=job_id)
        for n in range(1, count + 1)
    ]


def test_items_whose_lease_passed_are_sent_again_however_busy_the_pipeline(client: redis.Redis) -> None:
    jobs, results = JobStore(client), ResultStore(client, retain=100)
    job_id = jobs.create("c1", "fs")
    tasks = _tasks(job_id, 5)
    now = time.time()
    jobs.record_accepted(tasks, ttl_s=600, lease_s=60)
    results.store_many([event(1, job=job_id)])  # r1 has its result
    jobs.add_skipped(job_id, ["r2"], ttl_s=600)  # r2 was skipped: neither is pending
    assert sorted(client.zrange(keys.job_due(job_id), 0, -1)) == ["r3", "r4", "r5"]
    client.rpush(SCAN_REQUEST_QUEUE, "queued work")  # a busy pipeline does not hold recovery back
    client.hset("unacked", "tag", "a task a worker holds")
    sent: list[list[dict[str, object]]] = []

    assert recovery.redispatch_expired_items(jobs, [job_id], 60, sent.append, now=now + 30) == {}
    jobs.renew_leases([tasks[4]], lease_s=600)  # a worker took r5: its lease runs from now
    jobs.renew_leases([tasks[0]], lease_s=600)  # r1 is finished: no lease comes back
    assert client.zscore(keys.job_due(job_id), "r1") is None

    assert recovery.redispatch_expired_items(jobs, [job_id], 60, sent.append, now=now + 120) == {job_id: 2}
    (batch,) = sent
    assert sorted(ScanTask.model_validate(item).id for item in batch) == ["r3", "r4"]
    assert {item["resend"] for item in batch} == {1}, "each copy sent again is numbered"
    assert client.hget(keys.job(job_id), "redispatched") == "2"
    # their leases were renewed: another replica sweeping at the same moment sends nothing
    assert recovery.redispatch_expired_items(jobs, [job_id], 60, sent.append, now=now + 120) == {}
    assert recovery.redispatch_expired_items(jobs, [job_id], 60, sent.append, now=now + 300) == {job_id: 2}

    results.store_many([event(n, job=job_id) for n in (3, 4, 5)])
    assert client.hkeys(keys.job_pending(job_id)) == [] and client.zcard(keys.job_due(job_id)) == 0


@pytest.mark.parametrize("how", ["enumeration failed", "stalled"])
def test_the_accepted_items_of_a_failed_job_are_still_sent_again_until_each_has_an_outcome(
    client: redis.Redis, how: str
) -> None:
    """A failed job left the active set at once, so the lease sweep never again looked at its items:
    one whose message a worker lost ended with no result and no dead letter, counted unscanned for good."""
    from dsx_connect.jobs.stall import fail_stalled_jobs

    jobs, results = JobStore(client), ResultStore(client, retain=100)
    job_id = jobs.create("c1", "fs")
    now = time.time()
    jobs.record_accepted(_tasks(job_id, 2), ttl_s=600, lease_s=60)
    if how == "stalled":
        assert jobs.fail(job_id, "stalled") is True
    else:
        jobs.enqueue_done(job_id, 2, failure="listing the bucket failed")
    assert jobs.get(job_id)["status"] == "failed"  # type: ignore[index]
    sent: list[list[dict[str, object]]] = []
    fail_stalled_jobs(jobs, 3600, publish=sent.append, redispatch_after_s=60, now=now + 120)
    assert sorted(ScanTask.model_validate(item).id for batch in sent for item in batch) == ["r1", "r2"]
    assert job_id in jobs.active_ids()
    results.store_many([event(n, job=job_id) for n in (1, 2)])
    fail_stalled_jobs(jobs, 3600, publish=sent.append, redispatch_after_s=60, now=now + 300)
    assert job_id not in jobs.active_ids()  # each has its outcome: forgotten
    assert jobs.get(job_id)["status"] == "failed"  # type: ignore[index]


def test_a_batch_larger_than_one_call_keeps_every_item_pending_with_its_lease_per_job(
    client: redis.Redis,
) -> None:
    """accept.lua writes the pending entries and leases after its loop, one call per job per slice of
    1,000: a 2,500-item batch of two jobs, with one item already accepted, leaves each new item
    pending with its task and its lease, in its own job, and counts each once."""
    jobs = JobStore(client)
    ja, jb = jobs.create("c1", "fs", job_id="ja"), jobs.create("c1", "fs", job_id="jb")
    first = _tasks(ja, 1)
    jobs.record_accepted(first, ttl_s=600, lease_s=60)
    many = [t.model_copy(update={"id": f"a{t.id}"}) for t in _tasks(ja, 2000)]
    others = [t.model_copy(update={"id": f"b{t.id}"}) for t in _tasks(jb, 500)]
    before = time.time()
    counted = jobs.record_accepted([*first, *many, *others], ttl_s=600, lease_s=60)
    assert counted == {ja: 2000, jb: 500}
    assert client.hlen(keys.job_pending(ja)) == 2001 and client.hlen(keys.job_pending(jb)) == 500
    assert ScanTask.model_validate_json(client.hget(keys.job_pending(ja), "ar1999")).id == "ar1999"
    assert ScanTask.model_validate_json(client.hget(keys.job_pending(jb), "br500")).job_id == jb
    leases = client.zrange(keys.job_due(ja), 0, -1, withscores=True)
    assert len(leases) == 2001 and all(before + 59 <= score <= time.time() + 61 for _, score in leases)
    assert client.zcard(keys.job_due(jb)) == 500
    assert client.hget(keys.job(ja), "accepted") == "2001" and client.hget(keys.job(jb), "accepted") == "500"


def test_a_completed_job_keeps_no_pending_items(client: redis.Redis) -> None:
    jobs, results = JobStore(client), ResultStore(client, retain=100)
    job_id = jobs.create("c1", "fs")
    jobs.record_accepted(_tasks(job_id, 2), ttl_s=600)
    assert sorted(client.hkeys(keys.job_pending(job_id))) == ["r1", "r2"]
    assert 0 < client.ttl(keys.job_pending(job_id)) <= 600
    jobs.enqueue_done(job_id, 2)
    results.store_many([event(1, job=job_id), event(2, job=job_id)])
    assert jobs.get(job_id)["status"] == "completed"
    assert not client.exists(keys.job_pending(job_id)) and not client.exists(keys.job_due(job_id))


def test_counters_are_summed_per_batch_exactly_even_for_huge_sizes(client: redis.Redis) -> None:
    results = ResultStore(client, retain=100)
    big = [event(n, verdict="Malicious" if n % 2 else "Benign") for n in range(1, 5)]
    for n, item in enumerate(big, start=1):
        item.file_info.size_in_bytes = 3 * 10**15 + n
    results.store_many(big)
    stats = client.hgetall(keys.STATS)
    assert int(stats["bytes_scanned"]) == 4 * 3 * 10**15 + 10
    assert (stats["total"], stats["verdict:Malicious"], stats["verdict:Benign"]) == ("4", "2", "2")


def test_dedupe_outlives_retention_through_a_tombstone(client: redis.Redis) -> None:
    """A redelivered or resubmitted item whose result retention already dropped is still a duplicate:
    counted once, fed once (its request state stays, status completed, for the request-state TTL)."""
    from dsx_connect.state.feed import FeedTarget

    results = ResultStore(client, retain=2, request_ttl_s=600, feed=FeedTarget(["siem"], bound=100))
    assert results.store_many([event(1), event(2), event(3)]) == [True, True, True]
    assert client.hget(keys.RESULTS, "r1") is None  # dropped by retention
    assert client.hget(keys.request_state("r1"), "status") == "completed"
    assert 0 < client.ttl(keys.request_state("r1")) <= 600
    assert results.store_many([event(1)]) == [False]
    assert results.store_many([event(2), event(3)]) == [False, False]  # a redelivered result batch
    assert results.stats()["total"] == 3
    assert client.xlen(keys.superlog("siem", "stream")) == 3, "the SIEM feed got an event twice"
    # and the job/connector indexes were trimmed on write, not left for readers
    assert client.zrange(keys.results_by("job", "j1"), 0, -1) == ["r2", "r3"]
    assert client.zrange(keys.results_by("connector", "c1"), 0, -1) == ["r2", "r3"]
    # a job being cancelled does not count a stored item as skipped either
    jobs = JobStore(client)
    assert jobs.add_skipped("j1", ["r1"], ttl_s=60) == 0


def test_one_worker_probes_a_half_open_breaker(client: redis.Redis) -> None:
    from dsx_connect.state.breaker import ScannerBreaker

    # open for 30 s of real time (a short period could lapse during a stall of a busy machine);
    # the half-open state is read at a chosen time past it
    workers = [ScannerBreaker(client, threshold=1, open_s=30, open_max_s=60, probe_ttl_s=5) for _ in range(3)]
    reopen_at = workers[0].record_failure("scanner down")
    assert workers[1].state().is_open
    later = reopen_at + 0.001
    assert all(w.state(now=later).state == "half_open" for w in workers)
    assert [w.take_probe() for w in workers] == [True, False, False]  # the others keep waiting
    workers[0].record_failure("still down", probing=True)  # the probe failed: open again, claim freed
    assert workers[2].state().is_open and workers[2].take_probe()
    workers[2].record_success()
    assert workers[1].state().state == "closed" and workers[1].take_probe()  # a later half-open may probe


def test_the_result_script_writes_only_the_keys_keys_py_names(client: redis.Redis) -> None:
    """The store hands its script every key (KEYS): what it writes is what ``keys.py`` names."""
    client.hset(keys.job("j1"), "status", "running")
    malicious = ScanResultEvent(
        scan_request_id="r1", job_id="j1", connector=EventConnector(uuid="c1", name="c"), location="/x",
        verdict="Malicious", file_info=EventFileInfo(size_in_bytes=3),
        action=EventAction(requested="delete", applied=True, status="ok"),
    )  # fmt: skip
    assert ResultStore(client, 10).store_many([malicious]) == [True]
    assert set(client.keys("*")) == {
        keys.RESULTS, keys.RESULTS_INDEX, keys.RESULTS_SEQ, keys.STATS, keys.job("j1"),
        keys.request_state("r1"), keys.results_by("verdict", "Malicious"),
        keys.results_by("connector", "c1"), keys.results_by("job", "j1"),
    }  # fmt: skip
    assert client.hget(keys.STATS, "action:delete") == "1"


def test_a_batch_of_several_jobs_and_connectors_counts_each_item_in_its_own_job(client: redis.Redis) -> None:
    """The store passes each (job, connector) group's keys once: interleaved items still land in theirs."""
    results = ResultStore(client, retain=100)
    JobStore(client).create("c1", job_id="ja")
    JobStore(client).create("c2", job_id="jb")
    items = [
        event(1, job="ja", connector="c1"),
        event(2, job="jb", connector="c2", verdict="Malicious"),
        event(3, job="ja", connector="c1"),
        event(4, job="ja", connector="c2"),
        event(5, job="jb", connector="c2"),
    ]
    assert results.store_many(items) == [True] * 5
    assert client.hget(keys.job("ja"), "processed") == "3"
    assert client.hget(keys.job("jb"), "processed") == "2"
    assert client.hget(keys.job("jb"), "verdict:Malicious") == "1"
    assert set(client.zrange(keys.results_by("job", "ja"), 0, -1)) == {"r1", "r3", "r4"}
    assert set(client.zrange(keys.results_by("connector", "c2"), 0, -1)) == {"r2", "r4", "r5"}
    assert set(client.zrange(keys.results_by("connector", "c1"), 0, -1)) == {"r1", "r3"}


def test_a_result_stored_after_its_job_expired_does_not_bring_the_job_back(client: redis.Redis) -> None:
    """A redelivered store, or a dead letter requeued past the job's retention, arrives after the
    job's hash expired: the result is stored and counted in the stats, stays a duplicate after, and
    no job hash (nor done bitmap) comes back without a status or a TTL."""
    jobs, results = JobStore(client), ResultStore(client, retain=100)
    job_id = jobs.create("c1")
    client.delete(keys.job(job_id), keys.job_done(job_id))  # expired
    late = event(1, job=job_id)
    assert results.store_many([late], ["1"]) == [True]
    assert results.store_many([late], ["1"]) == [False]  # its tombstone: a request state
    assert not client.exists(keys.job(job_id)) and not client.exists(keys.job_done(job_id))
    assert jobs.get(job_id) is None
    assert results.stats()["total"] == 1


def test_a_malformed_item_fails_the_whole_batch_before_anything_is_written(client: redis.Redis) -> None:
    """An unknown verdict is refused by the script's first pass: no item of the batch is stored."""
    results = ResultStore(client, retain=100)
    with pytest.raises(redis.ResponseError, match="malformed item values"):
        results.store_many(
            [event(1).model_dump(mode="json"), {**event(2).model_dump(mode="json"), "verdict": "Odd"}]
        )
    assert client.keys("*") == []


def test_a_negative_size_from_the_scanner_is_stored_not_refused(client: redis.Redis) -> None:
    """The scanner's size is not validated (DsxaFileInfo): the script takes any integer, as it always did."""
    results = ResultStore(client, retain=100)
    odd = event(1)
    odd.file_info.size_in_bytes = -1
    assert results.store_many([odd, event(2)]) == [True, True]
    assert results.stats()["bytes_scanned"] == 9


def test_a_batch_at_the_size_bound_is_stored_indexed_and_trimmed_whole(client: redis.Redis) -> None:
    """5,000 items (the batch bound) in one call: the script sends index entries and removals in
    slices (Lua's unpack takes ~8,000 values), and retention trims the oldest in one go."""
    jobs, results = JobStore(client), ResultStore(client, retain=1500)
    job_id = jobs.create("c1")
    client.hset(keys.job_pending(job_id), mapping={f"r{n}": "1" for n in range(5000)})
    assert results.store_many([event(n, job=job_id) for n in range(5000)]) == [True] * 5000
    assert client.zcard(keys.RESULTS_INDEX) == client.hlen(keys.RESULTS) == 1500
    assert client.zrange(keys.RESULTS_INDEX, 0, 0) == ["r3500"] and client.get(keys.RESULTS_SEQ) == "5000"
    assert client.zcard(keys.results_by("verdict", "Benign")) == 1500
    assert (
        client.zcard(keys.results_by("job", job_id))
        == client.zcard(keys.results_by("connector", "c1"))
        == 1500
    )
    assert client.hlen(keys.job_pending(job_id)) == 0
    assert results.stats()["total"] == 5000 and (jobs.get(job_id) or {})["processed"] == 5000


def test_beside_a_sql_history_the_store_keeps_no_search_indexes_and_the_rest_alike(
    client: redis.Redis,
) -> None:
    """searched=False (a SQL history answers searches): the newest-first index, counts, replacements
    and retention behave as before; the verdict, connector and job indexes are not written."""
    jobs, results = JobStore(client), ResultStore(client, retain=3, searched=False)
    job_id = jobs.create("c1")
    failed = event(1, job=job_id, verdict="Not Scanned", error=EventError(kind="exhausted", message="down"))
    assert results.store_many([failed, *(event(n, job=job_id) for n in range(2, 5))]) == [True] * 4
    assert results.store_many([event(1, job=job_id, verdict="Malicious")]) == [False]  # trimmed: a duplicate
    assert results.store_many([event(5, job=job_id, verdict="Malicious")]) == [True]
    assert client.zrange(keys.RESULTS_INDEX, 0, -1) == ["r3", "r4", "r5"]
    assert client.hlen(keys.RESULTS) == 3
    assert client.keys(keys.results_by("*", "*")) == []
    stats = results.stats()
    assert stats["total"] == 5 and stats["verdicts"]["Benign"] == 3 and stats["verdicts"]["Malicious"] == 1
    assert (jobs.get(job_id) or {})["processed"] == 5


def test_triage_names_the_finished_items_a_copy_of_which_needs_no_scan(client: redis.Redis) -> None:
    """Stored with a done bit or with a tombstone, or skipped by a cancelled job: finished. Pending,
    unknown, or a requeued dead letter (its failed result waits to be replaced): not finished."""
    jobs, results = JobStore(client), ResultStore(client, retain=100)
    job_id = jobs.create("c1")

    def task(n: int, item: str | None) -> ScanTask:
        return ScanTask(id=f"r{n}", connector_uuid="c1", location=f"f{n}", job_id=job_id, job_item_id=item)

    tasks = [task(1, "1"), task(2, None), task(3, "3"), task(4, None), task(5, "5"), task(6, "6")]
    jobs.record_accepted(tasks, ttl_s=600)
    assert jobs.triage(tasks) == (set(), set())
    results.store_many([event(1, job=job_id), event(2, job=job_id)], ["1", None])  # a bit, a tombstone
    failed = event(5, job=job_id, verdict="Not Scanned", error=EventError(kind="exhausted", message="down"))
    results.store_many([failed], ["5"])
    client.zadd(keys.DEAD_LETTERS_REQUEUED, {"r5": time.time() + 60})  # requeued: scanned again
    jobs.add_skipped(job_id, ["r6"], 600, ["6"])  # a cancelled job reached it
    assert jobs.triage(tasks) == ({"r1", "r2", "r6"}, set())
    assert jobs.triage([]) == (set(), set())


def test_triage_reads_each_jobs_done_bits_for_interleaved_items_of_two_jobs(client: redis.Redis) -> None:
    """A job's done bits are read in one command: the answers must still land on their own items."""
    jobs, results = JobStore(client), ResultStore(client, retain=100)
    first, second = jobs.create("c1"), jobs.create("c1")
    tasks = [
        ScanTask(id=f"r{n}", connector_uuid="c1", location=f"f{n}", job_id=job, job_item_id=str(n))
        for n, job in zip(range(1, 9), [first, second] * 4, strict=True)
    ]
    tasks.insert(3, ScanTask(id="t", connector_uuid="c1", location="t", job_id=second))  # no bit
    jobs.record_accepted(tasks, ttl_s=600)
    stored = [task for task in tasks if task.id in {"r2", "r3", "r8", "t"}]
    events = [event(0, job=t.job_id).model_copy(update={"scan_request_id": t.id}) for t in stored]
    results.store_many(events, [t.job_item_id for t in stored])
    assert jobs.triage(tasks)[0] == {"r2", "r3", "r8", "t"}


def test_two_items_whose_positions_read_as_one_number_are_two_items(client: redis.Redis) -> None:
    """A connector's ids "7" and "07" are two items: storing one must not make the other look
    finished (they shared a bit: the other was never scanned, and its job never completed)."""
    jobs, results = JobStore(client), ResultStore(client, retain=100)
    job_id = jobs.create("c1")
    tasks = [
        ScanTask(id=f"r{n}", connector_uuid="c1", location=f"f{n}", job_id=job_id, job_item_id=item)
        for n, item in enumerate(["7", "07"])
    ]
    jobs.record_accepted(tasks, ttl_s=600)
    results.store_many([event(0, job=job_id)], ["7"])
    assert jobs.triage(tasks)[0] == {"r0"}
    results.store_many([event(1, job=job_id)], ["07"])
    assert jobs.triage(tasks)[0] == {"r0", "r1"}
    job = jobs.get(job_id)
    assert job is not None and job["enqueued"] == job["processed"] == 2 and job["not_yet_scanned"] == 0


def test_only_the_newest_copy_of_an_item_sent_again_is_scanned(client: redis.Redis) -> None:
    """The sweep numbers each copy it sends; the copies still queued are superseded, so copies sent
    while a long queue drains replace one another instead of piling up."""
    jobs = JobStore(client)
    job_id = jobs.create("c1", "fs")
    queued = _tasks(job_id, 3)  # as accepted and published: copy 0
    now = time.time()
    jobs.record_accepted(queued, ttl_s=600, lease_s=10)
    sent: list[list[dict[str, object]]] = []
    recovery.redispatch_expired_items(jobs, [job_id], 10, sent.append, now=now + 20)
    first = [ScanTask.model_validate(item) for item in sent[0]]
    assert jobs.triage(queued) == (set(), {"r1", "r2", "r3"})  # the originals still queued
    assert jobs.triage(first) == (set(), set())
    recovery.redispatch_expired_items(jobs, [job_id], 10, sent.append, now=now + 40)
    second = [ScanTask.model_validate(item) for item in sent[1]]
    assert {t.resend for t in second} == {2}
    assert jobs.triage(first) == (set(), {"r1", "r2", "r3"}) and jobs.triage(second) == (set(), set())
    # a retried or handed-back copy keeps its number: still the newest
    assert jobs.triage([second[0].model_copy(update={"attempt": 1})]) == (set(), set())

    # an operator's requeue of a letter that kept an older copy is scanned all the same
    client.zadd(keys.DEAD_LETTERS_REQUEUED, {"r1": time.time() + 60})
    assert jobs.triage([queued[0]]) == (set(), set())


def test_a_replaced_result_is_found_by_a_since_search_and_by_its_indexes(client: redis.Redis) -> None:
    """A failed result replaced by a later outcome kept its old place in the sequence while carrying
    the new time: a `since` search, walking newest first and stopping at the first older result,
    never reached it (the SQL history did), and streams reading after a sequence number missed it."""
    from datetime import UTC, datetime

    from dsx_connect.results.search import ResultFilters
    from dsx_connect.state.results_reader import RedisReader

    results = ResultStore(client, retain=100)
    failed = event(1, verdict="Not Scanned", error=EventError(kind="exhausted", message="down"))
    failed.timestamp = "2026-12-01T10:00:00.000000Z"
    results.store_many([failed])
    later = [event(n) for n in (2, 3)]
    for item in later:
        item.timestamp = "2026-12-01T11:00:00.000000Z"
    results.store_many(later)
    fixed = event(1, verdict="Malicious")
    fixed.timestamp = "2026-12-01T12:00:00.000000Z"
    assert results.store_many([fixed]) == [True]
    reader = RedisReader(results)
    since = ResultFilters(since=datetime(2026, 12, 1, 11, 30, tzinfo=UTC))
    assert [e["scan_request_id"] for e in reader.search(since, None, 10).items] == ["r1"]
    for by in (ResultFilters(job="j1"), ResultFilters(connector="c1"), ResultFilters(verdict="Malicious")):
        assert reader.search(by, None, 10).items[0]["scan_request_id"] == "r1", by
    assert reader.search(ResultFilters(verdict="Not Scanned"), None, 10).items == []


@pytest.mark.parametrize("item_id", ["7", None], ids=["done bit", "request state"])
def test_a_verdict_arriving_after_its_item_was_skipped_by_a_cancel_is_kept(
    client: redis.Redis, item_id: str | None
) -> None:
    """Copy A of an item is being scanned; the operator cancels; copy B (sent again by the lease
    sweep) is skipped; then A's verdict arrives. With a done bit it was dropped as a duplicate (no
    result, no event, no SIEM line for a Malicious file); without one it was counted both processed
    and skipped. It now takes the skip's place."""
    jobs, results = JobStore(client), ResultStore(client, retain=100)
    job_id = jobs.create("c1", "fs")
    task = ScanTask(id="r1", connector_uuid="c1", location="f1.txt", job_id=job_id, job_item_id=item_id)
    jobs.record_accepted([task], ttl_s=600)
    jobs.transition(job_id, "cancel")
    assert jobs.add_skipped(job_id, ["r1"], ttl_s=600, job_item_ids=[item_id]) == 1
    found = event(1, job=job_id, verdict="Malicious")
    assert results.store_many([found], job_item_ids=[item_id]) == [True]
    assert results.get("r1") is not None and results.get("r1")["verdict"] == "Malicious"  # type: ignore[index]
    view = jobs.get(job_id)
    assert view is not None and (view["processed"], view["skipped"]) == (1, 0)
    assert results.store_many([found], job_item_ids=[item_id]) == [False]  # and only once
    assert jobs.add_skipped(job_id, ["r1"], ttl_s=600, job_item_ids=[item_id]) == 0
    view = jobs.get(job_id)
    assert view is not None and (view["processed"], view["skipped"]) == (1, 0)


def test_an_item_whose_outcome_waits_in_a_result_letter_is_not_scanned_again(client: redis.Redis) -> None:
    """The result step gave up storing an outcome (its action already applied: the file deleted) and
    dead-lettered it; the item stayed pending, so the lease sweep sent its scan again, which found the
    file gone and stored "Not Scanned" over the Malicious verdict the letter holds."""
    from dsx_connect.state.dead_letters import DeadLetter, DeadLetterStore

    jobs = JobStore(client)
    job_id = jobs.create("c1", "fs")
    now = time.time()
    jobs.record_accepted(_tasks(job_id, 2), ttl_s=600, lease_s=60)
    letters = DeadLetterStore(client, 3600)
    letter = DeadLetter(
        id="r1", stage="result", reason="gave up after 31 attempts on Redis/broker errors", attempts=31,
        job_id=job_id, connector_uuid="c1", location="f1.txt", payload={"task": {"id": "r1"}},
    )  # fmt: skip
    letters.add_many([letter])
    sent: list[list[dict[str, object]]] = []
    assert recovery.redispatch_expired_items(jobs, [job_id], 60, sent.append, now=now + 120) == {job_id: 1}
    assert [item["id"] for item in sent[0]] == ["r2"]  # r1's outcome is in its letter: requeueing stores it
    assert client.zscore(keys.job_due(job_id), "r1") is not None  # still leased, still pending
    letters.remove([letter])  # the operator gave up on the letter: the item is scanned again
    assert recovery.redispatch_expired_items(jobs, [job_id], 60, sent.append, now=now + 300) == {job_id: 2}


def test_dead_letter_counts_come_from_indexes_and_bulk_operations_go_by_chunks(client: redis.Redis) -> None:
    """Stats read and parsed every letter (each /dlq/stats, each /metrics scrape: 1.7 s and 350 MB at
    100,000 letters); clearing all removed them in one Lua call that held Redis for over a second."""
    from dsx_connect.state import dead_letters as module
    from dsx_connect.state.dead_letters import DeadLetter, DeadLetterStore

    store = DeadLetterStore(client, retain_s=3600)

    def letter(n: int, stage: str) -> DeadLetter:
        return DeadLetter(
            id=f"d{n}", stage=stage, reason="gave up", attempts=3, job_id="j", connector_uuid="c",  # type: ignore[arg-type]
            location=f"f{n}", payload={"id": f"d{n}"},
        )  # fmt: skip

    count = 2 * module.CHUNK + 500
    store.add_many([letter(n, ("scan", "action", "result")[n % 3]) for n in range(count)])
    store.add_many([letter(0, "action")])  # written anew at another stage
    client.hvals = None  # type: ignore[method-assign]  # reading every letter is no longer how stats work
    stats = store.stats()
    del client.hvals
    assert stats["count"] == count and sum(stats["by_stage"].values()) == count
    assert stats["by_stage"]["action"] == len(range(1, count, 3)) + 1
    assert stats["oldest"] is not None and stats["newest"] is not None and stats["oldest"] <= stats["newest"]
    assert store.items(0, 5, stage="result")[1] == stats["by_stage"]["result"]

    for stage in ("scan", "action", "result"):  # letters kept by a release without stage indexes
        client.delete(keys.dead_letters_of(stage))
    assert store.stats()["by_stage"] == stats["by_stage"]

    scripts: list[int] = []
    remove = store._remove
    store._remove = lambda keys, args: scripts.append(len(args) // 2) or remove(keys=keys, args=args)  # type: ignore[method-assign]
    assert store.clear() == count
    assert max(scripts) <= module.CHUNK and store.stats()["count"] == 0
    assert not any(client.exists(keys.dead_letters_of(stage)) for stage in ("scan", "action", "result"))


def test_dead_letter_pages_follow_a_cursor_that_new_letters_do_not_shift(client: redis.Redis) -> None:
    """Pages by offset shifted while letters arrived: the next page repeated the last ones."""
    from dsx_connect.state.dead_letters import DeadLetter, DeadLetterStore

    store = DeadLetterStore(client, retain_s=3600)

    def batch(*ids: str) -> list[DeadLetter]:
        return [
            DeadLetter(id=i, stage="scan", reason="gave up", attempts=3, job_id="j", connector_uuid="c",
                       location=i, payload={"id": i})
            for i in ids
        ]  # fmt: skip

    store.add_many(batch("a1", "a2", "a3"))  # letters of one batch share their time
    store.add_many(batch("b1", "b2", "b3", "b4"))
    seen: list[str] = []
    cursor = None
    arrived = 0
    while True:
        page, cursor = store.page_after(cursor, 2)
        seen += [letter.id for letter in page]
        arrived += 1
        store.add_many(batch(f"new{arrived}"))  # arriving while the pages are read
        if cursor is None:
            break
    assert seen == ["b4", "b3", "b2", "b1", "a3", "a2", "a1"]
    assert store.page_after(None, 1)[0][0].id == f"new{arrived}"
