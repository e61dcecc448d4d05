"""The scheduler against a real Redis, with injected clocks: several instances stand for API replicas.

The start function records what it is asked to start (the code path behind it, the full-scan route's,
is exercised by ``test_schedules_api.py`` with real processes).
"""

from __future__ import annotations

import itertools
import json
import random
import threading
from collections.abc import Iterator
from datetime import datetime

import pytest
import redis

from dsx_connect import keys
from dsx_connect.redis_client import replicated
from dsx_connect.schedules.models import ScheduleSpec, iso
from dsx_connect.schedules.scheduler import (
    IDENTITY_STABLE_READS,
    MIXED_STABLE_READS,
    ScanNotStarted,
    Scheduler,
)
from dsx_connect.state.schedule_lease import LeaderLease, current_leader
from dsx_connect.state.schedules import Claim, ScheduleStore
from tests.support.procs import redis_server, wait_for

pytestmark = pytest.mark.integration


def ts(text: str) -> float:
    return datetime.fromisoformat(text).timestamp()


T0 = datetime.fromisoformat("2026-03-02T09:59:30+00:00").timestamp()  # 30 s before a 10:00 slot
HOURLY = ScheduleSpec(cron="0 * * * *")


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    with redis_server(tmp_path_factory.mktemp("schedules-redis")) as (url, _):
        yield url


@pytest.fixture
def client(server: str) -> Iterator[redis.Redis]:
    conn = redis.Redis.from_url(server, decode_responses=True)
    conn.flushdb()
    yield conn
    conn.close()


class Clock:
    def __init__(self, now: float = T0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


class Starts:
    """Records the scans the schedulers start (thread-safe: replicas may tick at once)."""

    def __init__(self, fail: set[str] | None = None) -> None:
        self.calls: list[tuple[str, str]] = []
        self.fail = fail or set()
        self._ids = itertools.count(1)
        self._lock = threading.Lock()

    def __call__(self, connector_uuid: str, trigger: str) -> str:
        if connector_uuid in self.fail:
            raise ScanNotStarted(f"connector {connector_uuid} is not registered")
        with self._lock:
            self.calls.append((connector_uuid, trigger))
            return f"job-{next(self._ids)}"


class Identity:
    def __init__(self, value: str | None) -> None:
        self.value = value

    def __call__(self) -> str | None:
        return self.value


def replica(
    client: redis.Redis,
    name: str,
    starts: Starts,
    clock: Clock,
    identity: Identity | None = None,
) -> Scheduler:
    return Scheduler(
        ScheduleStore(client),
        LeaderLease(client, 30.0, holder=name),
        starts,
        identity=identity,
        scanner_poll_s=0.0,
        clock=clock,
    )


def test_a_due_slot_starts_exactly_one_scan_across_replicas(client: redis.Redis) -> None:
    clock, starts = Clock(), Starts()
    store = ScheduleStore(client)
    store.put("c1", HOURLY, now=T0 - 3600 + 60)  # set at 09:00:30, after that slot
    replicas = [replica(client, f"r{i}", starts, clock) for i in range(3)]
    for r in replicas:
        r.tick()
    assert starts.calls == []  # 10:00 not reached yet; 09:00 was before the schedule
    clock.now = T0 + 45  # 10:00:15
    threads = [threading.Thread(target=r.tick) for r in replicas for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert starts.calls == [("c1", "schedule")]
    leaders = [r for r in replicas if r.lease.token is not None]
    assert len(leaders) == 1 and current_leader(client) == leaders[0].lease.holder
    run = store.run("c1")
    assert run.last_slot == "2026-03-02T10:00:00Z" and run.last_job_id == "job-1" and run.last_error is None


def test_slots_missed_while_every_replica_was_down_run_once(client: redis.Redis) -> None:
    clock, starts = Clock(), Starts()
    ScheduleStore(client).put("c1", ScheduleSpec(cron="*/5 * * * *"), now=T0)
    scheduler = replica(client, "r1", starts, clock)
    clock.now = T0 + 6 * 3600  # six hours (72 slots) later
    for _ in range(3):
        scheduler.tick()
    assert starts.calls == [("c1", "schedule")]
    clock.now += 300  # the next slot runs again, once
    scheduler.tick()
    scheduler.tick()
    assert starts.calls == [("c1", "schedule")] * 2


def test_a_killed_leader_is_replaced_and_the_next_slot_runs_once(client: redis.Redis) -> None:
    clock, starts = Clock(T0 + 45), Starts()
    ScheduleStore(client).put("c1", HOURLY, now=T0 - 1800)
    first, second = replica(client, "first", starts, clock), replica(client, "second", starts, clock)
    assert first.tick().leader and not second.tick().leader
    assert starts.calls == [("c1", "schedule")]
    # "first" dies: it never ticks again; "second" takes over once the lease runs out (made to run
    # out now: a short TTL could also lapse between two ticks of a busy machine)
    client.pexpire(keys.SCHEDULER_LEADER, 1)
    wait_for(lambda: second.tick().leader, timeout=10, what="the second replica taking the lease")
    assert current_leader(client) == "second"
    assert starts.calls == [("c1", "schedule")]  # the 10:00 slot is not started again
    clock.now += 3600  # 11:00:15
    second.tick()
    second.tick()
    assert starts.calls == [("c1", "schedule")] * 2
    # the old leader comes back (paused, not dead): its token is stale, it starts nothing
    clock.now += 3600
    assert not first.tick().leader
    assert starts.calls == [("c1", "schedule")] * 2


def test_a_claim_is_fenced_by_the_lease_token(client: redis.Redis) -> None:
    store = ScheduleStore(client)
    store.put("c1", HOURLY, now=T0)
    lease = LeaderLease(client, 30, holder="a")
    assert lease.hold() and lease.token is not None
    assert store.claim_slot(lease.token, "c1", T0) is Claim.CLAIMED
    assert store.claim_slot(lease.token, "c1", T0) is Claim.TAKEN
    assert store.claim_slot("a/stale-token", "c1", T0 + 3600) is Claim.LOST_LEASE
    assert not client.exists(keys.schedule_slot("c1", int(T0 + 3600)))


def test_a_released_lease_is_taken_at_once(client: redis.Redis) -> None:
    a, b = LeaderLease(client, 30, holder="a"), LeaderLease(client, 30, holder="b")
    assert a.hold() and not b.hold()
    a.release()
    assert b.hold() and current_leader(client) == "b"
    assert not a.hold()


def test_a_schedule_set_after_a_slot_waits_for_the_next(client: redis.Redis) -> None:
    clock, starts = Clock(T0 + 45), Starts()  # 10:00:15
    store = ScheduleStore(client)
    store.put("c1", HOURLY, now=clock.now)
    scheduler = replica(client, "r1", starts, clock)
    scheduler.tick()
    assert starts.calls == []
    # changing only the rescan flag keeps the slots counting from the schedule's creation
    store.put("c1", HOURLY.model_copy(update={"rescan_on_scanner_change": True}), now=clock.now + 3600)
    clock.now += 3600
    scheduler.tick()
    assert starts.calls == [("c1", "schedule")]


def test_disabled_and_deleted_schedules_start_nothing(client: redis.Redis) -> None:
    clock, starts = Clock(T0 + 45), Starts()
    store = ScheduleStore(client)
    store.put("off", HOURLY.model_copy(update={"enabled": False}), now=T0 - 3600)
    store.put("gone", HOURLY, now=T0 - 3600)
    assert store.delete("gone") and not store.delete("gone")
    replica(client, "r1", starts, clock).tick()
    assert starts.calls == []
    assert not client.exists(keys.schedule_state("gone"))


def test_a_start_that_fails_is_recorded_and_not_retried_for_that_slot(client: redis.Redis) -> None:
    clock, starts = Clock(T0 + 45), Starts(fail={"c1"})
    store = ScheduleStore(client)
    store.put("c1", HOURLY, now=T0 - 1800)
    scheduler = replica(client, "r1", starts, clock)
    assert scheduler.tick().failed == [("c1", "schedule", "connector c1 is not registered")]
    assert scheduler.tick().failed == []
    run = store.run("c1")
    assert run.last_error == "connector c1 is not registered" and run.last_job_id is None


def test_a_scanner_identity_change_rescans_each_flagged_connector_once(client: redis.Redis) -> None:
    clock, starts, identity = Clock(), Starts(), Identity("engine 1; rules aaa")
    store = ScheduleStore(client)
    flagged = ScheduleSpec(rescan_on_scanner_change=True)
    store.put("a", flagged, now=T0)
    store.put("b", ScheduleSpec(cron="0 3 * * *", rescan_on_scanner_change=True), now=T0)
    store.put("c", HOURLY, now=T0)  # not flagged
    store.put("d", flagged.model_copy(update={"enabled": False}), now=T0)
    first = replica(client, "first", starts, clock, identity)
    second = replica(client, "second", starts, clock, identity)
    first.tick()
    second.tick()
    assert starts.calls == [] and store.scanner_identity() == "engine 1; rules aaa"  # first sight
    identity.value = None  # scanner unreachable: unknown, nothing happens, the last one is kept
    first.tick()
    assert starts.calls == [] and store.scanner_identity() == "engine 1; rules aaa"
    identity.value = "engine 1; rules bbb"
    for _ in range(IDENTITY_STABLE_READS - 1):
        first.tick()
    assert starts.calls == []  # not settled yet
    first.tick()
    assert sorted(starts.calls) == [("a", "scanner_change"), ("b", "scanner_change")]
    first.tick()
    # a new leader that had not seen the identity stored yet re-reads the same change: claims hold
    client.set(keys.SCANNER_IDENTITY, "engine 1; rules aaa")  # as if "first" died before storing it
    client.decr(keys.SCANNER_IDENTITY_CHANGES)  # (stored with the identity, in one transaction)
    client.pexpire(keys.SCHEDULER_LEADER, 1)  # "first" stops ticking and its lease runs out
    wait_for(lambda: second.tick().leader, timeout=10, what="the second replica taking the lease")
    for _ in range(IDENTITY_STABLE_READS):
        second.tick()
    assert sorted(starts.calls) == [("a", "scanner_change"), ("b", "scanner_change")]
    assert store.scanner_identity() == "engine 1; rules bbb"
    identity.value = "engine 1; rules ccc"  # another change: one more scan each
    for _ in range(IDENTITY_STABLE_READS):
        second.tick()
    assert len(starts.calls) == 4
    assert store.run("a").last_trigger == "scanner_change"


def test_an_identity_change_while_every_replica_was_down_counts(client: redis.Redis) -> None:
    clock, starts = Clock(), Starts()
    store = ScheduleStore(client)
    store.put("a", ScheduleSpec(rescan_on_scanner_change=True), now=T0)
    store.set_scanner_identity("rules old")
    scheduler = replica(client, "r1", starts, clock, Identity("rules new"))
    for _ in range(IDENTITY_STABLE_READS):
        scheduler.tick()
    assert starts.calls == [("a", "scanner_change")]


def test_the_background_runner_ticks_and_gives_the_lease_up_when_it_stops(client: redis.Redis) -> None:
    import asyncio

    from dsx_connect.schedules.scheduler import run_scheduler

    starts, started = Starts(), threading.Event()

    def start(connector_uuid: str, trigger: str) -> str:
        job_id = starts(connector_uuid, trigger)
        started.set()
        return job_id

    ScheduleStore(client).put("c1", HOURLY, now=T0 - 1800)
    scheduler = replica(client, "runner", starts, Clock(T0 + 45))
    scheduler.start = start

    async def run() -> None:
        async with run_scheduler(scheduler, poll_s=0.05):
            assert await asyncio.to_thread(started.wait, 10)
            assert current_leader(client) == "runner"

    asyncio.run(run())
    assert starts.calls == [("c1", "schedule")]
    assert current_leader(client) is None  # released on the way out: another replica takes over at once


def test_enabling_a_schedule_again_starts_no_slot_that_fell_while_it_was_off(client: redis.Redis) -> None:
    store = ScheduleStore(client)
    daily = ScheduleSpec(cron="0 2 * * *")
    store.put("c1", daily, now=ts("2026-03-01T10:00:00+00:00"))
    clock, starts = Clock(ts("2026-03-02T02:00:03+00:00")), Starts()
    scheduler = replica(client, "r1", starts, clock)
    scheduler.tick()
    assert starts.calls == [("c1", "schedule")]
    store.put("c1", daily.model_copy(update={"enabled": False}), now=ts("2026-03-02T09:00:00+00:00"))
    clock.now = ts("2026-03-03T02:00:03+00:00")
    scheduler.tick()  # off: the 03-03 02:00 slot starts nothing
    store.put("c1", daily, now=ts("2026-03-03T14:00:00+00:00"))
    clock.now = ts("2026-03-03T14:00:03+00:00")
    scheduler.tick()
    assert starts.calls == [("c1", "schedule")], "the slot that fell while it was off is not started"
    clock.now = ts("2026-03-04T02:00:03+00:00")
    scheduler.tick()
    assert len(starts.calls) == 2  # the next slot, as next_run showed


def test_a_stored_schedule_that_no_longer_loads_stops_no_other(client: redis.Redis) -> None:
    """A record whose zone the time zone database dropped (US/Pacific-New went in tzdata 2020b), or of
    a newer version: left out with an error, every other schedule still runs."""
    store = ScheduleStore(client)
    for uuid in ("a-good", "z-good"):
        store.put(uuid, HOURLY, now=T0 - 1800)
    broken = json.loads(client.hget(keys.SCHEDULES, "a-good") or "{}")
    client.hset(keys.SCHEDULES, "m-legacy", json.dumps(broken | {"timezone": "US/Pacific-New"}))
    starts = Starts()
    replica(client, "r1", starts, Clock(T0 + 45)).tick()
    assert sorted(starts.calls) == [("a-good", "schedule"), ("z-good", "schedule")]
    assert [s.connector_uuid for s in store.all()] == ["a-good", "z-good"]
    assert store.get("m-legacy") is None  # a PUT replaces it


def test_rules_re_applied_after_a_rollback_rescan_again(client: redis.Redis) -> None:
    store = ScheduleStore(client)
    store.put("c1", ScheduleSpec(rescan_on_scanner_change=True), now=T0)
    identity, starts, clock = Identity("rules A"), Starts(), Clock()
    scheduler = replica(client, "r1", starts, clock, identity)
    scheduler.tick()  # first sight
    rescans = []
    # an update, its rollback (soon after: the identity it replaced comes back, which a mixed fleet
    # does too, so it counts after MIXED_STABLE_READS polls), the fixed update
    for value, polls in (
        ("rules B", IDENTITY_STABLE_READS),
        ("rules A", MIXED_STABLE_READS),
        ("rules B", MIXED_STABLE_READS),
    ):
        identity.value = value
        before = len(starts.calls)
        for _ in range(polls - 1):
            scheduler.tick()
        assert len(starts.calls) == before, f"{value}: counted before {polls} polls in a row"
        for _ in range(3):  # settled, then read again: nothing more
            scheduler.tick()
        rescans.append(len(starts.calls) - before)
    assert rescans == [1, 1, 1]


def test_a_fleet_that_stays_mixed_after_a_change_rescans_once(client: redis.Redis) -> None:
    """Replicas answering two identities at random (a rollout stuck half-way, ClamAV databases
    updated out of step) read three in a row of either every few polls: each run was a change and
    rescanned every flagged connector again, all day long."""
    store = ScheduleStore(client)
    store.put("c1", ScheduleSpec(rescan_on_scanner_change=True), now=T0)
    identity, starts = Identity("rules A"), Starts()
    scheduler = replica(client, "r1", starts, Clock(), identity)
    scheduler.tick()  # first sight
    rng = random.Random(7)
    answers = [rng.choice(("rules A", "rules B")) for _ in range(1000)]
    runs_of_three = sum(answers[i : i + 3] in (["rules A"] * 3, ["rules B"] * 3) for i in range(998))
    assert runs_of_three > 100  # what used to count as that many changes
    for value in answers:
        identity.value = value
        scheduler.tick()
    assert starts.calls == [("c1", "scanner_change")]  # the first change only
    assert store.scanner_identity() == "rules B"
    identity.value = "rules A"  # the fleet settles on A: a change again, once it holds
    for _ in range(MIXED_STABLE_READS + 3):
        scheduler.tick()
    assert starts.calls == [("c1", "scanner_change")] * 2 and store.scanner_identity() == "rules A"


def test_a_leader_stopped_between_claim_and_start_leaves_no_earlier_job_as_this_slots(
    client: redis.Redis,
) -> None:
    """The claim moved the last slot but left the previous run's job id: the schedule then read
    as if the slot had run that job. And a claim of a schedule deleted meanwhile wrote its state
    back (an orphaned state hash)."""
    store = ScheduleStore(client)
    store.put("c1", HOURLY, now=T0 - 7200)
    starts, clock = Starts(), Clock(T0 - 3600 + 45)
    scheduler = replica(client, "r1", starts, clock)
    scheduler.tick()
    assert store.run("c1").last_job_id == "job-1"

    def stopped(connector_uuid: str, trigger: str) -> str:
        raise KeyboardInterrupt  # the process ends inside the start: nothing is recorded after it

    scheduler.start = stopped
    clock.now += 3600
    with pytest.raises(KeyboardInterrupt):
        scheduler.tick()
    run = store.run("c1")
    assert run.last_slot == iso(T0 + 30)  # the 10:00 slot, claimed
    assert run.last_job_id is None and "not confirmed" in str(run.last_error)

    store.put("c2", HOURLY, now=T0 - 7200)
    token = scheduler.lease.token
    assert token is not None
    store.delete("c2")
    assert store.claim_slot(token, "c2", T0) is Claim.GONE
    assert not client.exists(keys.schedule_state("c2"))


def test_a_claim_the_replicas_did_not_confirm_starts_nothing(client: redis.Redis) -> None:
    """With DSXCONNECT_REDIS_WAIT_REPLICAS, a slot is started only once its claim is on the replicas:
    a failover before that would give the promoted replica's leader the same slot again."""
    store = ScheduleStore(client)
    store.put("c1", HOURLY, now=T0 - 1800)
    starts = Starts()
    scheduler = replica(client, "r1", starts, Clock(T0 + 45))
    scheduler.durable = lambda: replicated(client, 1, 50)  # this Redis has no replica
    report = scheduler.tick()
    assert starts.calls == [] and report.failed[0][2].startswith("claim not replicated")
    assert "claim not replicated" in str(store.run("c1").last_error)
    scheduler.tick()
    assert starts.calls == [], "at most once: the claimed slot is not tried again"


def test_a_scanner_rollout_answering_both_identities_starts_one_rescan_once_it_settles(
    client: redis.Redis,
) -> None:
    """Scanner replicas behind one address answer old and new identities in turn: each alternation
    was a change, and each started a full rescan of every flagged connector."""
    store = ScheduleStore(client)
    store.put("c1", ScheduleSpec(rescan_on_scanner_change=True), now=T0)
    identity, starts = Identity("rules A"), Starts()
    scheduler = replica(client, "r1", starts, Clock(), identity)
    scheduler.tick()  # first sight
    for value in ["rules B", "rules A", "rules B", "rules B", "rules A", "rules B", "rules A"] * 3:
        identity.value = value
        scheduler.tick()
    assert starts.calls == [] and store.scanner_identity() == "rules A"
    identity.value = "rules B"  # the rollout is done
    for _ in range(IDENTITY_STABLE_READS + 3):
        scheduler.tick()
    assert starts.calls == [("c1", "scanner_change")] and store.scanner_identity() == "rules B"


def test_a_new_identity_counts_after_three_polls_in_a_row_and_the_known_one_restarts_the_count(
    client: redis.Redis,
) -> None:
    """docs/schedules.md: a new identity counts only once read on 3 polls in a row (``SCANNER_POLL_S``
    apart), and reading the known one again starts the count over. Ticks between polls read nothing."""
    store = ScheduleStore(client)
    store.put("c1", ScheduleSpec(rescan_on_scanner_change=True), now=T0)
    identity, starts, clock = Identity("rules A"), Starts(), Clock()
    scheduler = Scheduler(
        ScheduleStore(client), LeaderLease(client, 30.0, holder="r1"), starts,
        identity=identity, scanner_poll_s=60.0, clock=clock,
    )  # fmt: skip
    scheduler.tick()  # first sight of "rules A": the known identity
    started_after: list[int] = []
    for value in ["rules B", "rules A"] * 2 + ["rules B"] * 5:
        identity.value = value
        clock.now += 20
        scheduler.tick()  # within the poll interval: not a read
        clock.now += 20
        scheduler.tick()
        clock.now += 20  # SCANNER_POLL_S since the last read: this tick polls
        scheduler.tick()
        started_after.append(len(starts.calls))
    assert started_after == [0, 0, 0, 0, 0, 0, 1, 1, 1], "one rescan, on the third B in a row"
    assert IDENTITY_STABLE_READS == 3  # the number the documentation gives
    assert starts.calls == [("c1", "scanner_change")] and store.scanner_identity() == "rules B"
