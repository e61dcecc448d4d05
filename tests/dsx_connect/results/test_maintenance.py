"""The API's upkeep of the history: schema at start (or not), retention and the outbox on a timer,
and CSV cells a spreadsheet would run."""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path

import pytest
import redis

from dsx_connect.db.migrate import current_revision
from dsx_connect.results.exports import safe_cell
from dsx_connect.results.maintenance import results_maintenance
from dsx_connect.results.recorder import OUTBOX, history_for
from dsx_connect.results.search import ResultFilters
from dsx_connect.results.settings import ResultsDbSettings
from tests.dsx_connect.results.conftest import make_event

pytestmark = pytest.mark.integration


def test_the_schema_is_left_alone_when_migrate_on_start_is_off(
    tmp_path: Path, redis_client: redis.Redis
) -> None:
    url = f"sqlite:///{tmp_path / 'manual.db'}"

    async def start() -> None:
        async with results_maintenance(ResultsDbSettings(url=url, migrate_on_start=False), redis_client):
            pass

    asyncio.run(start())
    assert current_revision(url) is None


def test_retention_and_the_outbox_run_on_their_own(tmp_path: Path, redis_client: redis.Redis) -> None:
    url = f"sqlite:///{tmp_path / 'timed.db'}"
    config = ResultsDbSettings(url=url, retain="4", retention_interval_s=0.2)
    redis_client.rpush(OUTBOX, *(json.dumps(make_event(n)) for n in range(10)))

    async def run() -> int:
        async with results_maintenance(config, redis_client):  # migrates, then keeps the history
            history = history_for(url)
            deadline = time.monotonic() + 15
            while time.monotonic() < deadline:
                if (
                    redis_client.llen(OUTBOX) == 0
                    and len(history.search(ResultFilters(), None, 100).items) == 4
                ):
                    return 4
                await asyncio.sleep(0.1)
        return -1

    assert asyncio.run(run()) == 4
    kept = [e["scan_request_id"] for e in history_for(url).search(ResultFilters(), None, 100).items]
    assert kept == ["r9", "r8", "r7", "r6"]


def test_the_api_starts_while_the_database_is_down_and_migrates_once_it_is_back(
    tmp_path: Path, redis_client: redis.Redis
) -> None:
    """The schema upgrade at start raised when the database could not be reached, and the API, whose
    intake, dashboard and outbox all work without the history, did not start at all."""
    folder = tmp_path / "not-mounted-yet"
    folder.write_text("a file where the database's folder goes: nothing can open it")
    url = f"sqlite:///{folder / 'history.db'}"
    config = ResultsDbSettings(url=url, retention_interval_s=0.2)
    redis_client.rpush(OUTBOX, *(json.dumps(make_event(n)) for n in range(3)))

    async def run() -> bool:
        async with results_maintenance(config, redis_client):  # would raise here
            await asyncio.sleep(0.5)  # a few rounds with the database still down
            assert redis_client.llen(OUTBOX) == 3
            folder.unlink()  # the database is back
            folder.mkdir()
            deadline = time.monotonic() + 15
            while time.monotonic() < deadline:
                if redis_client.llen(OUTBOX) == 0:
                    return True
                await asyncio.sleep(0.1)
        return False

    assert asyncio.run(run())
    assert current_revision(url) is not None
    assert len(history_for(url).search(ResultFilters(), None, 10).items) == 3


@pytest.mark.unit
@pytest.mark.parametrize("value", ['=HYPERLINK("http://x")', "+1", "-2+3", "@SUM(A1)", "\tx"])
def test_csv_cells_that_would_run_as_formulas_are_quoted(value: str) -> None:
    assert safe_cell(value) == "'" + value


@pytest.mark.unit
def test_ordinary_csv_cells_are_unchanged() -> None:
    assert [safe_cell(v) for v in ("docs/a.txt", 42, "", None)] == ["docs/a.txt", 42, "", None]
