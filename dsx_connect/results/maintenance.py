"""The SQL history's upkeep, run by the API: schema upgrade at start, then a periodic task that
writes the outbox (batches the database refused) and applies retention in bounded deletes.

One API replica does a round at a time (a Redis lock); the others skip it.
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager, suppress
from dataclasses import dataclass

import redis

from dsx_connect.db.migrate import upgrade
from dsx_connect.results.recorder import drain_outbox, history_for
from dsx_connect.results.settings import ResultsDbSettings
from dsx_connect.state.results import (
    HISTORY_LOCK,
    release_history_lock,
    renew_history_lock,
    take_history_lock,
)

log = logging.getLogger(__name__)

LOCK = HISTORY_LOCK
OUTBOX_INTERVAL_S = 5.0
#: renewed by each outbox trim and each retention batch; above twice PostgreSQL's 60-s statement
#: timeout (one statement runs unrenewed). A killed API's lock holds the others back this long (it
#: was 600 s: a crash kept results out of the history for ten minutes)
LOCK_TTL_S = 150


@dataclass
class Round:
    written: int = 0
    deleted: int = 0
    skipped: bool = False


def maintain_once(config: ResultsDbSettings, client: redis.Redis, retention: bool = True) -> Round:
    """One round: write the outbox, then (if asked) apply retention. Skipped while another runs."""
    token = uuid.uuid4().hex
    if not take_history_lock(client, token, LOCK_TTL_S):
        return Round(skipped=True)
    try:
        history = history_for(config.sql_url)
        done = Round(written=drain_outbox(history, client, lock=(token, LOCK_TTL_S)))
        if retention and (config.retain.count or config.retain.age_s):
            done.deleted = history.apply_retention(
                config.retain,
                config.retention_batch,
                still_ours=lambda: renew_history_lock(client, token, LOCK_TTL_S),
            )
        return done
    finally:
        release_history_lock(client, token)


@asynccontextmanager
async def results_maintenance(config: ResultsDbSettings, client: redis.Redis) -> AsyncIterator[None]:
    """Upgrade the schema (unless ``migrate_on_start`` is off), then keep the history for the app's life."""
    if not config.durable:
        yield
        return
    # the database down at start must not keep the API down (intake, dashboard, the outbox's
    # parking all work without it): the upgrade is tried again before each round until it is done
    migrated = not config.migrate_on_start or await _upgrade(config)
    task = asyncio.create_task(_maintain(config, client, migrated))
    try:
        yield
    finally:
        task.cancel()
        with suppress(asyncio.CancelledError):
            await task


async def _upgrade(config: ResultsDbSettings) -> bool:
    """Bring the schema up to date; False (logged) when the database cannot be reached or upgraded."""
    try:
        await asyncio.to_thread(upgrade, config.sql_url)
    except Exception as exc:
        log.warning(
            "results history schema not upgraded (tried again every %.0f s; results wait in the "
            "outbox meanwhile): %s: %s",
            OUTBOX_INTERVAL_S,
            type(exc).__name__,
            exc,
        )
        return False
    return True


async def _maintain(config: ResultsDbSettings, client: redis.Redis, migrated: bool = True) -> None:
    next_retention = time.monotonic() + min(config.retention_interval_s, 30.0)
    while True:
        await asyncio.sleep(min(OUTBOX_INTERVAL_S, config.retention_interval_s))
        if not migrated:
            migrated = await _upgrade(config)
            if not migrated:
                continue
        due = time.monotonic() >= next_retention
        try:
            done = await asyncio.to_thread(maintain_once, config, client, due)
        except Exception as exc:  # the database or Redis may be down: try again next round
            log.warning("results history maintenance failed: %s: %s", type(exc).__name__, exc)
            continue
        if due and not done.skipped:
            next_retention = time.monotonic() + config.retention_interval_s
        if done.written:
            log.info("results history: wrote %d results from the outbox", done.written)
