"""One suite for every results store: Redis (``redis``), ``memory``, SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
import redis

from dsx_connect.results.recorder import OUTBOX
from dsx_connect.results.search import Cursor, ResultFilters
from dsx_connect.state.results_reader import RedisReader
from tests.dsx_connect.results.conftest import Backend, make_event, memory_backend

pytestmark = pytest.mark.integration


def ids(items: list[dict[str, object]]) -> list[str]:
    return [str(item["scan_request_id"]) for item in items]


def test_a_result_written_twice_is_kept_once(backend: Backend) -> None:
    backend.write([make_event(1), make_event(2)])
    backend.write([make_event(1), make_event(2)])  # a redelivered batch
    page = backend.reader.search(ResultFilters(), None, 50)
    assert ids(page.items) == ["r2", "r1"] and page.next_cursor is None
    assert backend.reader.get("r1")["location"] == "docs/f1.txt"
    assert backend.reader.get("nope") is None


def test_a_failed_result_is_replaced_by_a_later_outcome(backend: Backend) -> None:
    backend.write(
        [make_event(1, verdict="Not Scanned", error={"kind": "exhausted", "message": "scanner down"})]
    )
    backend.write([make_event(1, verdict="Malicious", reason="EICAR")])
    assert backend.reader.get("r1")["verdict"] == "Malicious"
    backend.write([make_event(1, verdict="Benign")])  # a success is never replaced
    assert backend.reader.get("r1")["verdict"] == "Malicious"


def test_keyset_pages_cover_everything_once_newest_first(backend: Backend) -> None:
    backend.write([make_event(n) for n in range(25)])
    seen: list[str] = []
    cursor = None
    for _ in range(10):
        page = backend.reader.search(ResultFilters(), cursor, 10)
        seen += ids(page.items)
        if page.next_cursor is None:
            break
        cursor = Cursor.decode(page.next_cursor)
    assert seen == [f"r{n}" for n in reversed(range(25))]


@pytest.mark.parametrize(
    ("filters", "expected"),
    [
        ({"verdict": "Malicious"}, ["r4", "r2"]),
        ({"connector": "c2"}, ["r5", "r3"]),
        ({"job": "j2"}, ["r5", "r4"]),
        ({"sha256": "AB" * 32}, ["r3"]),
        ({"location_prefix": "share/in/"}, ["r5", "r1"]),
        ({"location_prefix": "share/in"}, ["r5", "r1", "r0"]),
        ({"threat": "EICAR"}, ["r2"]),
        ({"threat": "Worm.X", "job": "j2"}, ["r4"]),
        ({"since": datetime(2026, 12, 1, 10, 0, 3, tzinfo=UTC)}, ["r5", "r4", "r3"]),
        ({"since": "2026-12-01T10:00:01Z", "until": "2026-12-01T10:00:04Z"}, ["r3", "r2", "r1"]),
        ({"verdict": "Malicious", "connector": "c2"}, []),
    ],
)
def test_filters(backend: Backend, filters: dict[str, object], expected: list[str]) -> None:
    backend.write(
        [
            make_event(0, location="share/in-old/a.txt"),
            make_event(1, location="share/in/b.txt"),
            make_event(2, verdict="Malicious", reason="EICAR"),
            make_event(3, connector="c2", sha256="ab" * 32),
            make_event(4, job="j2", verdict="Malicious", reason="Worm.X"),
            make_event(5, job="j2", connector="c2", location="share/in/c/d.txt"),
        ]
    )
    page = backend.reader.search(ResultFilters.model_validate(filters), None, 50)
    assert ids(page.items) == expected


def test_every_result_streams_out_a_page_at_a_time(backend: Backend) -> None:
    backend.write([make_event(n, verdict="Malicious" if n % 3 == 0 else "Benign") for n in range(40)])
    streamed = list(backend.reader.iter_events(ResultFilters(verdict="Malicious"), chunk=4))
    assert ids(streamed) == [f"r{n}" for n in reversed(range(40)) if n % 3 == 0]


@pytest.mark.parametrize("verdict", [None, "Not Scanned"])
def test_a_failure_replaced_during_an_export_appears_once(backend: Backend, verdict: str | None) -> None:
    """The Redis stores walked their index a page at a time: a failure replaced meanwhile took a
    newer sequence, above the pages already read, and was left out of the export altogether.
    Every store now exports what it held when the export began, each result once."""
    failed = {"kind": "exhausted", "message": "scanner down"}
    backend.write([make_event(n, verdict="Not Scanned", error=failed) for n in range(1, 5)])
    events = backend.reader.iter_events(ResultFilters(verdict=verdict), chunk=1)
    seen = [next(events)["scan_request_id"]]  # r4, the newest
    backend.write([make_event(1, verdict="Malicious", reason="EICAR")])  # r1 retried and scanned
    backend.write([make_event(5)])  # a result stored during the export
    seen += [event["scan_request_id"] for event in events]
    if verdict is None or backend.name in ("sqlite", "postgresql"):  # SQL: as it was at the start
        assert seen == ["r4", "r3", "r2", "r1"]
    else:  # Redis: each result as it is when its page is read, so r1 no longer matches
        assert seen == ["r4", "r3", "r2"]


def test_a_bad_cursor_is_refused() -> None:
    with pytest.raises(ValueError, match="not one this API returned"):
        Cursor.decode("'; drop table scan_results --")


def test_memory_keeps_no_history_and_only_its_bounded_count(redis_client: redis.Redis) -> None:
    """``memory``: what the API reads is the Redis store the workers write (separate processes),
    bounded by RETAIN, and nothing goes to a history or its outbox."""
    memory = memory_backend(redis_client, retain=20)
    assert isinstance(memory.reader, RedisReader)
    memory.write([make_event(n) for n in range(30)])
    kept = list(memory.reader.iter_events(ResultFilters(), chunk=7))
    assert ids(kept) == [f"r{n}" for n in reversed(range(10, 30))]
    assert memory.reader.get("r5") is None
    assert redis_client.llen(OUTBOX) == 0
