"""The SQL history alone: one transaction per batch, job totals, retention, the outbox."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest
import redis
from sqlalchemy import func, select
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
