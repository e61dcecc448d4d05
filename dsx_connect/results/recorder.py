"""Hands each stored batch of results to the SQL history (``DSXCONNECT_RESULTS_DB`` sqlite/postgresql).

Called by the result step right after Redis stored the batch. A batch the database refuses (down,
locked, not yet migrated) waits in a Redis list, the outbox, which the API's maintenance task
writes later: Redis holds the result either way, so nothing is lost.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Sequence
from functools import lru_cache
from typing import Any

import redis
from sqlalchemy.exc import DataError, DBAPIError, IntegrityError, SQLAlchemyError

from dsx_connect.db.engine import shared_engine
from dsx_connect.results.history import SqlHistory
from dsx_connect.results.rows import encode_event
from dsx_connect.results.settings import ResultsDbSettings
from dsx_connect.state.results import HISTORY_OUTBOX, outbox_drop, outbox_park, outbox_peek

log = logging.getLogger(__name__)

OUTBOX = HISTORY_OUTBOX  # list of event JSON the history has not taken yet


def history_for(sql_url: str) -> SqlHistory:
    """The process's history for ``sql_url`` (one engine and pool per process)."""
    return _history(sql_url, os.getpid())


@lru_cache(maxsize=8)
def _history(sql_url: str, _pid: int) -> SqlHistory:
    return SqlHistory(shared_engine(sql_url))


def record_history(
    config: ResultsDbSettings,
    client: redis.Redis,
    events: Sequence[dict[str, Any]],
    encoded: Sequence[str] = (),
) -> bool:
    """Write ``events`` to the SQL history in one transaction; on failure park them in the outbox.

    ``encoded``: each event's stored text, when the caller has it. Returns whether they were written
    now. Does nothing without a SQL history.
    """
    if not config.durable or not events:
        return True
    try:
        history_for(config.sql_url).record(events, encoded)
        return True
    except SQLAlchemyError as exc:
        log.warning(
            "results history unavailable (%s): %d results wait in the outbox", type(exc).__name__, len(events)
        )
        lost = outbox_park(
            client, list(encoded) or [encode_event(event) for event in events], config.outbox_max
        )
        if lost:
            log.error(
                "results history outbox full (DSXCONNECT_RESULTS_DB__OUTBOX_MAX=%d): %d results will be "
                "missing from the history (Redis still holds them, bounded by its cache)",
                config.outbox_max,
                lost,
            )
        return False
    except Exception:  # a bug here must not cost the batch its notifications: Redis holds the results
        log.exception("results history: a batch of %d results could not be recorded", len(events))
        return False


def drain_outbox(
    history: SqlHistory,
    client: redis.Redis,
    batch: int = 1000,
    max_batches: int = 100,
    lock: tuple[str, int] | None = None,
) -> int:
    """Write what waits in the outbox, ``batch`` at a time; stops at the first failure (kept for
    the next round). Run by one process at a time: ``lock`` (the maintenance round's token and
    TTL) must still hold for each trim, which extends it; a round that lost it stops."""
    written = 0
    for _ in range(max_batches):
        raw = outbox_peek(client, batch)
        if not raw:
            break
        _record_or_skip(history, [json.loads(text) for text in raw], raw)  # the parked text, as stored
        if not outbox_drop(client, len(raw), lock):  # removed only once written, by the lock holder
            log.warning("results history: the maintenance lock ran out mid-round; another replica goes on")
            break
        written += len(raw)
    return written


#: SQLSTATE classes of a refusal of the data itself (PostgreSQL): data exception, integrity, and
#: program limit exceeded (class 54, which psycopg raises as an OperationalError, like an outage:
#: an index entry over 2,704 bytes, a location of 1,000 CJK characters in the location index)
_DATA_SQLSTATE_CLASSES = ("22", "23", "54")


def refuses_data(exc: SQLAlchemyError) -> bool:
    """Whether ``exc`` is the database refusing the rows, not being unavailable."""
    if isinstance(exc, DataError | IntegrityError):
        return True
    state = getattr(getattr(exc, "orig", None), "sqlstate", None)
    return isinstance(exc, DBAPIError) and isinstance(state, str) and state[:2] in _DATA_SQLSTATE_CLASSES


def _record_or_skip(history: SqlHistory, events: list[dict[str, Any]], texts: list[str]) -> None:
    """Record a batch; if the database refuses its data (not its availability), record the events
    one by one and log those it refuses, so one bad event cannot hold the outbox forever."""
    try:
        history.record(events, texts)
    except SQLAlchemyError as exc:
        if not refuses_data(exc):
            raise
        for event, text in zip(events, texts, strict=True):
            try:
                history.record([event], [text])
            except SQLAlchemyError as refused:
                if not refuses_data(refused):
                    raise
                log.error(
                    "results history refused result %s (it stays in Redis while retention keeps it): %s",
                    event.get("scan_request_id"),
                    refused.orig if isinstance(refused, DBAPIError) else refused,
                )
