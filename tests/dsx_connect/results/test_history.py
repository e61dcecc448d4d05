"""The SQL history alone: one transaction per batch, job totals, retention, the outbox."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import pytest
import redis
from sqlalchemy import func, select, text
from sqlalchemy.exc import SQLAlchemyError

from dsx_connect.db.migrate import upgrade
from dsx_connect.db.schema import scan_results
from dsx_connect.results.history import SqlHistory
from dsx_connect.results.maintenance import maintain_once
from dsx_connect.results.recorder import OUTBOX, history_for, record_history
from dsx_connect.results.search import ResultFilters
from dsx_connect.results.settings import ResultsDbSettings, Retention
from tests.dsx_connect.results.conftest import make_event

pytestmark = pytest.mark.integration

BOTH = pytest.mark.parametrize("sql_history", ["sqlite", "postgresql"], indirect=True)


def rows(history: SqlHistory) -> int:
    with history.engine.connect() as conn:
        return int(conn.execute(select(func.count()).select_from(scan_results)).scalar() or 0)


@pytest.mark.parametrize("sql_history", ["postgresql"], indirect=True)
def test_a_batch_is_one_transaction(sql_history: SqlHistory) -> None:
    bad = make_event(2, verdict="V" * 40)  # longer than the column: PostgreSQL refuses the row
    with pytest.raises(SQLAlchemyError):
        sql_history.record([make_event(1), bad, make_event(3)])
    assert rows(sql_history) == 0


@BOTH
def test_job_totals(sql_history: SqlHistory) -> None:
    sql_history.record(
        [
            make_event(1, ts="2026-12-01T10:00:00Z"),
            make_event(2, verdict="Malicious", reason="EICAR", ts="2026-12-01T10:00:10Z"),
            make_event(
                3,
                verdict="Not Scanned",
                error={"kind": "exhausted", "message": "x"},
                ts="2026-12-01T10:00:20Z",
            ),
            make_event(4, job="other"),
        ]
    )
    totals = sql_history.job_totals("j1")
    assert totals.results == 3
    assert totals.verdicts == {"Benign": 1, "Malicious": 1, "Not Scanned": 1}
    assert totals.errors == 1 and totals.actions == {"move": 1}
    assert totals.bytes_scanned == 11 + 12 + 13
    assert (totals.last_us - totals.first_us) == 20_000_000


@BOTH
def test_retention_by_count_deletes_the_oldest_in_bounded_batches(sql_history: SqlHistory) -> None:
    sql_history.record([make_event(n) for n in range(30)])
    deleted = sql_history.apply_retention(Retention(count=12), batch=5)
    assert deleted == 18 and rows(sql_history) == 12
    kept = sql_history.search(ResultFilters(), None, 100).items
    assert [e["scan_request_id"] for e in kept][-1] == "r18"


@BOTH
def test_retention_by_age(sql_history: SqlHistory) -> None:
    now = time.time()
    stamp = lambda ago: time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(now - ago))  # noqa: E731
    sql_history.record(
        [make_event(1, ts=stamp(3 * 86400)), make_event(2, ts=stamp(2 * 86400)), make_event(3, ts=stamp(60))]
    )
    assert sql_history.apply_retention(Retention(age_s=86400), batch=1) == 2
    assert sql_history.get("r3") is not None and sql_history.get("r1") is None


def test_a_refused_batch_waits_in_the_outbox_then_reaches_the_history(
    tmp_path: Path, redis_client: redis.Redis
) -> None:
    url = f"sqlite:///{tmp_path / 'late.db'}"
    config = ResultsDbSettings(url=url)
    # not migrated yet (workers started before the API): the insert fails, nothing is lost
    assert record_history(config, redis_client, [make_event(1), make_event(2)]) is False
    assert redis_client.llen(OUTBOX) == 2
    upgrade(url)
    done = maintain_once(config, redis_client)
    assert done.written == 2 and redis_client.llen(OUTBOX) == 0
    assert history_for(url).get("r2") is not None
    assert record_history(config, redis_client, [make_event(3)]) is True


def test_maintenance_applies_retention_once_at_a_time(tmp_path: Path, redis_client: redis.Redis) -> None:
    url = f"sqlite:///{tmp_path / 'kept.db'}"
    upgrade(url)
    config = ResultsDbSettings(url=url, retain="3")
    history_for(url).record([make_event(n) for n in range(10)])
    redis_client.set("dsxc:results:history:maintenance", "someone-else", ex=60)
    assert maintain_once(config, redis_client).skipped
    redis_client.delete("dsxc:results:history:maintenance")
    assert maintain_once(config, redis_client).deleted == 7


def test_a_maintenance_round_holds_its_lock_briefly_renews_it_and_stops_when_it_is_lost(
    tmp_path: Path, redis_client: redis.Redis, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The lock was taken for 600 s and never renewed by retention: an API killed mid-round kept the
    other replicas from writing the outbox into the history for ten minutes. It is taken for
    ``LOCK_TTL_S`` now, renewed before each retention batch, and a round whose lock was lost (it ran
    out and another replica took it) stops and leaves the other's lock alone."""
    from dsx_connect.results import maintenance
    from dsx_connect.state import results as state

    lock = "dsxc:results:history:maintenance"
    url = f"sqlite:///{tmp_path / 'kept.db'}"
    upgrade(url)
    history_for(url).record([make_event(n) for n in range(10)])
    ttls: list[int] = []
    renew = state.renew_history_lock

    def watched(client: redis.Redis, token: str, ttl_s: int) -> bool:
        ttls.append(int(client.pttl(lock)))
        if len(ttls) == 3:  # the lock ran out and another replica took it
            client.set(lock, "another-replica", ex=60)
        return renew(client, token, ttl_s)

    monkeypatch.setattr(maintenance, "renew_history_lock", watched)
    config = ResultsDbSettings(url=url, retain="2", retention_batch=1)
    assert maintain_once(config, redis_client).deleted == 2  # two batches, then the lock was gone
    assert 0 < ttls[0] <= maintenance.LOCK_TTL_S * 1000 <= 150_000
    assert redis_client.get(lock) == "another-replica"  # released only by its holder


@pytest.mark.parametrize("sql_history", ["postgresql"], indirect=True)
def test_an_event_the_database_refuses_does_not_hold_the_outbox(
    sql_history: SqlHistory, redis_client: redis.Redis
) -> None:
    from dsx_connect.results.recorder import drain_outbox

    redis_client.rpush(
        OUTBOX, *(json.dumps(e) for e in (make_event(1), make_event(2, verdict="V" * 40), make_event(3)))
    )
    assert drain_outbox(sql_history, redis_client) == 3
    assert redis_client.llen(OUTBOX) == 0
    assert [sql_history.get(f"r{n}") is not None for n in (1, 2, 3)] == [True, False, True]


@pytest.mark.parametrize("sql_history", ["postgresql"], indirect=True)
def test_long_locations_and_a_nul_in_a_reason_reach_the_history(
    sql_history: SqlHistory, redis_client: redis.Redis
) -> None:
    """A location of 1,000 CJK characters (3,000 bytes; an Azure blob name may have 1,024) was over
    the location index's 2,704-byte entry limit: PostgreSQL refused its row (program limit
    exceeded), which the drain first took for an outage, holding everything parked behind it, and
    then skipped: the result never reached the history. The index covers the location's first
    ``LOCATION_HEAD`` characters now (0005). And a Malicious verdict whose scanner reason held a NUL
    was refused (text holds none)."""
    from dsx_connect.results.recorder import drain_outbox

    long_location = "docs/" + LONG_CJK
    events = [
        make_event(1),
        make_event(2, location=long_location),
        make_event(3, verdict="Malicious", reason="Trojan\x00.Evil"),
        make_event(4),
    ]
    redis_client.rpush(OUTBOX, *(json.dumps(e) for e in events))
    assert drain_outbox(sql_history, redis_client) == 4
    assert redis_client.llen(OUTBOX) == 0
    assert [sql_history.get(f"r{n}") is not None for n in (1, 2, 3, 4)] == [True] * 4
    found = sql_history.search(ResultFilters(threat="Trojan.Evil"), None, 10).items
    assert [e["scan_request_id"] for e in found] == ["r3"]
    for prefix in (long_location[:6], long_location[:700], long_location):
        found = sql_history.search(ResultFilters(location_prefix=prefix), None, 10).items
        assert [e["scan_request_id"] for e in found] == ["r2"], len(prefix)


#: varied characters: an index entry is compressed first, and 1,000 of one character would fit
LONG_CJK = "".join(chr(0x4E00 + n * 7919 % 20000) for n in range(1000))


@BOTH
def test_a_location_prefix_finds_what_starts_with_it_on_either_side_of_the_indexed_head(
    sql_history: SqlHistory,
) -> None:
    """Prefix searches range over the location index's head (``LOCATION_HEAD`` characters) and, for
    a longer prefix, over the whole location: both sides of that boundary, against ``startswith``."""
    from dsx_connect.db.schema import LOCATION_HEAD

    stem = "s/" + "d" * (LOCATION_HEAD - 4)  # LOCATION_HEAD - 2 characters
    tails = ["", "a", "ab", "abc", "ab\u4e00c", "b", "aa" * 200, "ab" * 200, "ab" * 200 + "x", "\U0010ffff"]
    locations = [stem + tail for tail in tails] + [stem[:-1] + "e", "s/e"]
    sql_history.record([make_event(n, location=loc) for n, loc in enumerate(locations)])
    prefixes = [stem[:3], stem, stem + "a", stem + "ab", stem + "abc", stem + "ab" * 150, stem + "ab" * 200]
    prefixes += [stem + "ab" * 200 + "x", stem + "ab" * 200 + "y", stem + "\U0010ffff", stem[:-1] + "e"]
    for prefix in prefixes:
        found = sql_history.search(ResultFilters(location_prefix=prefix), None, 100).items
        expected = {f"r{n}" for n, loc in enumerate(locations) if loc.startswith(prefix)}
        assert {e["scan_request_id"] for e in found} == expected, (len(prefix), prefix[-8:])


@BOTH
def test_a_location_prefix_search_uses_the_location_index(sql_history: SqlHistory) -> None:
    """The query's head expression is the index's, so both databases range over the index."""
    from dsx_connect.results.history import _location_starts_with

    sql_history.record([make_event(n, location=f"share/in/{n}") for n in range(5)])
    sqlite = sql_history.engine.dialect.name == "sqlite"
    for prefix in ("share/in/", "share/" + "x" * 700):
        query = select(scan_results.c.id).where(*_location_starts_with(prefix))
        compiled = str(query.compile(sql_history.engine, compile_kwargs={"literal_binds": True}))
        with sql_history.engine.connect() as conn:
            if not sqlite:
                conn.exec_driver_sql("SET enable_seqscan = off")
            rows = conn.execute(text(("EXPLAIN QUERY PLAN " if sqlite else "EXPLAIN ") + compiled))
            plan = "\n".join(str(row[-1]) for row in rows)
        assert "ix_scan_results_location_head" in plan, plan


@BOTH
def test_a_jobs_bytes_scanned_leave_out_results_served_from_the_cache(sql_history: SqlHistory) -> None:
    """The job record counts no bytes for a cached result (docs/scan-cache.md); the history's report,
    used once that record expired, counted each cached file's whole size as scanned."""
    scanned = make_event(1)
    cached = [{**make_event(n), "scanner": {"cached": True}} for n in (2, 3)]
    sql_history.record([scanned, *cached])
    totals = sql_history.job_totals("j1")
    assert totals.results == 3 and totals.bytes_scanned == scanned["file_info"]["size_in_bytes"]


@BOTH
def test_the_outbox_is_written_with_the_text_it_parked(
    sql_history: SqlHistory, redis_client: redis.Redis
) -> None:
    """The parked text is the stored event: drained as it is, not decoded and encoded again (which
    would write a small float's exponent differently, ``2.5e-7`` for json's ``2.5e-07``)."""
    from dsx_connect.results.recorder import drain_outbox

    parked = [json.dumps({**make_event(n), "x_ratio": 2.5e-07}) for n in (1, 2)]
    redis_client.rpush(OUTBOX, *parked)
    assert drain_outbox(sql_history, redis_client) == 2
    with sql_history.engine.connect() as conn:
        stored = dict(conn.execute(select(scan_results.c.scan_request_id, scan_results.c.event)).all())
    assert [stored["r1"], stored["r2"]] == parked
    assert redis_client.llen(OUTBOX) == 0


def test_a_stalled_postgresql_parks_the_batch_instead_of_holding_the_result_step(
    tmp_path: Path, redis_client: redis.Redis, pg_server: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A locked table (a migration, VACUUM FULL, an operator's open transaction) held each result
    batch for ever: nothing reached Redis either, and jobs stalled. The write now gives up after the
    lock timeout and the batch waits in the outbox."""
    import psycopg

    from dsx_connect.db import engine as db_engine
    from tests.dsx_connect.results.conftest import sql_url

    monkeypatch.setattr(db_engine, "PG_LOCK_TIMEOUT_MS", 300)  # engines made from here on
    url = sql_url("postgresql", tmp_path, pg_server)
    upgrade(url)
    blocker = psycopg.connect(url.replace("postgresql+psycopg://", "postgresql://"))
    try:
        blocker.execute("LOCK TABLE scan_results IN ACCESS EXCLUSIVE MODE")
        started = time.monotonic()
        assert record_history(ResultsDbSettings(url=url), redis_client, [make_event(1)]) is False
        assert time.monotonic() - started < 10
        assert redis_client.llen(OUTBOX) == 1
    finally:
        blocker.rollback()
        blocker.close()
    assert maintain_once(ResultsDbSettings(url=url), redis_client).written == 1


@BOTH
def test_one_request_twice_in_a_batch_keeps_what_redis_keeps(sql_history: SqlHistory) -> None:
    """Redis keeps the first outcome unless it failed; the history kept the last, so searches and
    reports said the action failed while the result itself said it succeeded."""
    done = make_event(1, ts="2026-12-01T10:00:00Z", action_status="success")
    again = make_event(1, ts="2026-12-01T10:00:01Z", action_status="error")  # the file was already moved
    sql_history.record([done, again])
    assert (sql_history.get("r1") or {})["action"]["status"] == "success"
    failed = make_event(2, ts="2026-12-01T10:00:00Z", error={"kind": "exhausted", "message": "x"})
    sql_history.record([failed, make_event(2, ts="2026-12-01T10:00:05Z")])
    assert not (sql_history.get("r2") or {}).get("error")  # a failure is replaced by what followed


@BOTH
def test_an_older_failure_from_the_outbox_does_not_overwrite_a_newer_one(sql_history: SqlHistory) -> None:
    newer = make_event(1, ts="2026-12-01T11:00:00Z", error={"kind": "exhausted", "message": "attempt 2"})
    older = make_event(1, ts="2026-12-01T10:00:00Z", error={"kind": "exhausted", "message": "attempt 1"})
    sql_history.record([newer])
    sql_history.record([older])  # parked during an outage, drained late
    assert (sql_history.get("r1") or {})["error"]["message"] == "attempt 2"
    success = make_event(1, ts="2026-12-01T10:30:00Z")  # a success replaces a failure, whenever it ran
    sql_history.record([success])
    assert not (sql_history.get("r1") or {}).get("error")


def test_a_round_that_outlived_its_lock_trims_nothing(tmp_path: Path, redis_client: redis.Redis) -> None:
    """Two replicas' rounds, the first stuck past its lock's TTL: both read the same head of the
    outbox and both trimmed it, so the second trim dropped results nobody had written."""
    from dsx_connect.results.recorder import drain_outbox
    from dsx_connect.state.results import outbox_park

    url = f"sqlite:///{tmp_path / 'locked.db'}"
    upgrade(url)
    history = history_for(url)
    outbox_park(redis_client, [json.dumps(make_event(n)) for n in range(10)])
    redis_client.set("dsxc:results:history:maintenance", "replica-b", ex=60)  # A's lock ran out; B took it
    assert drain_outbox(history, redis_client, batch=5, lock=("replica-a", 600)) == 0
    assert (
        redis_client.llen(OUTBOX) == 10
    )  # A wrote its batch (harmless: writes are idempotent), trimmed nothing
    assert drain_outbox(history, redis_client, batch=5, lock=("replica-b", 600)) == 10
    assert redis_client.llen(OUTBOX) == 0 and rows(history) == 10
    assert redis_client.ttl("dsxc:results:history:maintenance") > 60  # each trim extends the holder's lock


def test_the_outbox_is_bounded_and_a_full_one_parks_no_more(
    tmp_path: Path, redis_client: redis.Redis
) -> None:
    """A long outage filled Redis with parked results until its maxmemory: the push then failed the
    result step before Redis stored anything, turning a history outage into a results outage."""
    config = ResultsDbSettings(url=f"sqlite:///{tmp_path / 'never-migrated.db'}", outbox_max=1000)
    assert record_history(config, redis_client, [make_event(n) for n in range(800)]) is False
    assert record_history(config, redis_client, [make_event(n) for n in range(800, 1600)]) is False
    assert redis_client.llen(OUTBOX) == 1000  # the oldest kept, in order: a drain reading them is safe
    assert json.loads(redis_client.lindex(OUTBOX, 0) or "{}")["scan_request_id"] == "r0"
    assert json.loads(redis_client.lindex(OUTBOX, -1) or "{}")["scan_request_id"] == "r999"


@BOTH
def test_a_location_prefix_ending_in_the_last_code_point_finds_what_starts_with_it(
    sql_history: SqlHistory,
) -> None:
    """The range's upper bound was the prefix plus U+10FFFF, below every longer match."""
    top = "\U0010ffff"
    names = [f"a{top}", f"a{top}{top}x", f"a{top}b", "b", "a"]
    sql_history.record([make_event(n, location=name) for n, name in enumerate(names)])
    found = sql_history.search(ResultFilters(location_prefix=f"a{top}"), None, 10).items
    assert sorted(e["location"] for e in found) == sorted(names[:3])
    everything = sql_history.search(ResultFilters(location_prefix=top), None, 10).items
    assert everything == []  # nothing starts with it here, and no bound above is needed


def test_the_urls_own_libpq_options_are_kept_beside_the_timeouts(
    tmp_path: Path, redis_client: redis.Redis, pg_server: Any
) -> None:
    """The timeouts went in as the connection's `options`, replacing the URL's (a search_path): the
    API and workers then wrote to a schema the migration had not used, and every batch was parked."""
    import psycopg

    from tests.dsx_connect.results.conftest import sql_url

    base = sql_url("postgresql", tmp_path, pg_server)
    with psycopg.connect(base.replace("postgresql+psycopg://", "postgresql://"), autocommit=True) as conn:
        conn.execute("CREATE SCHEMA hist")
    url = f"{base}?options=-csearch_path%3Dhist"
    upgrade(url)
    config = ResultsDbSettings(url=url)
    assert record_history(config, redis_client, [make_event(1)]) is True
    with history_for(url).engine.connect() as conn:
        assert conn.exec_driver_sql("SHOW search_path").scalar() == "hist"
        assert conn.exec_driver_sql("SHOW lock_timeout").scalar() == "5s"


@BOTH
def test_an_export_sees_the_history_as_it_was_when_it_started(sql_history: SqlHistory) -> None:
    """A failure replaced during an export took the replacement's newer time, above the export's
    cursor, and was left out of it altogether; the export now reads one snapshot."""
    failed = {"kind": "exhausted", "message": "x"}
    sql_history.record([make_event(n, ts=f"2026-12-01T10:00:0{n}Z", error=failed) for n in range(1, 5)])
    events = sql_history.iter_events(ResultFilters(), chunk=1)
    seen = [next(events)["scan_request_id"]]  # r4, the newest
    sql_history.record([make_event(1, ts="2026-12-01T11:00:00Z")])  # r1 retried and scanned
    sql_history.record([make_event(5, ts="2026-12-01T11:00:01Z")])  # a new result
    seen += [event["scan_request_id"] for event in events]
    assert seen == ["r4", "r3", "r2", "r1"]
    assert [e["scan_request_id"] for e in sql_history.iter_events(ResultFilters())] == [
        "r5",
        "r1",
        "r4",
        "r3",
        "r2",
    ]


def test_a_retention_round_deletes_at_most_200_batches_and_the_next_round_continues(
    tmp_path: Path, redis_client: redis.Redis
) -> None:
    """docs/results.md: retention deletes oldest first, ``RETENTION_BATCH`` rows per transaction, at
    most 200 batches a round; the next round continues. One row a batch: 200 rows a round."""
    url = f"sqlite:///{tmp_path / 'rounds.db'}"
    upgrade(url)
    config = ResultsDbSettings.model_validate({"url": url, "retain": "5", "retention_batch": 1})
    history = history_for(url)
    over = 200 + 37  # more than one round's worth over the count
    history.record([make_event(n) for n in range(over + 5)])
    first = maintain_once(config, redis_client)
    assert first.deleted == 200 and rows(history) == over + 5 - 200
    assert history.get("r199") is None and history.get("r200") is not None  # the oldest went first
    second = maintain_once(config, redis_client)
    assert second.deleted == 37 and rows(history) == 5
    kept = sorted(int(e["scan_request_id"][1:]) for e in history.search(ResultFilters(), None, 100).items)
    assert kept == list(range(over, over + 5))
    assert maintain_once(config, redis_client).deleted == 0


@BOTH
def test_apply_retention_stops_after_max_batches_and_resumes_where_it_stopped(
    sql_history: SqlHistory,
) -> None:
    sql_history.record([make_event(n) for n in range(40)])
    keep = Retention(count=4)
    assert sql_history.apply_retention(keep, batch=3, max_batches=5) == 15
    assert rows(sql_history) == 25 and sql_history.get("r14") is None and sql_history.get("r15") is not None
    assert sql_history.apply_retention(keep, batch=3, max_batches=5) == 15
    assert sql_history.apply_retention(keep, batch=3, max_batches=5) == 6  # a short batch ends it
    assert rows(sql_history) == 4
