"""The one contract every destination implements, and the batching they share.

A sink turns one event into its wire record (``encode``) and sends a list of records (``send``).
The forwarder cuts what it takes from a buffer into chunks the service accepts (``chunks``: count,
bytes with per-record overhead, per-record limit), sends them oldest first and acknowledges each
chunk as soon as it is delivered, so a failure halfway never re-sends what already went through.

Errors (``shared.errors``):

    RetryableError   the receiver is down, slow, throttling or refusing our credentials: keep the
                     events and retry with backoff (they are delivered once it recovers)
    PermanentError   the receiver refused these events as such (malformed, too large): retrying
                     cannot help; the forwarder narrows it down to the refused events and sets them aside
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, ClassVar

from dsx_connect.superlog.events import event_time


@dataclass(frozen=True)
class Record:
    """One event encoded for a destination: its wire payload, size as the service counts it, and time."""

    payload: Any
    size: int
    time: datetime


class Sink:
    """Base of the four destinations; subclasses set the limits and implement ``encode`` and ``send``."""

    name: ClassVar[str] = "sink"
    max_records: int = 500
    max_bytes: int = 1_000_000
    overhead_bytes: int = 0  # counted per record on top of its payload (CloudWatch: 26)
    max_record_bytes: int = 1_000_000
    max_span: timedelta | None = None  # between the oldest and newest record of one call (CloudWatch: 24 h)

    def encode(self, event: dict[str, Any]) -> Record:
        raise NotImplementedError

    def send(self, records: Sequence[Record]) -> int:
        """Deliver ``records`` (oldest first); return how many the service accepted but discarded."""
        raise NotImplementedError

    def close(self) -> None:
        """Release connections (called when the forwarder stops)."""

    def record(self, payload: Any, size: int, event: dict[str, Any]) -> Record:
        return Record(payload, size, event_time(event))

    def chunks(self, records: Sequence[Record]) -> Iterator[list[Record]]:
        """Consecutive runs of ``records`` that each fit one call: at most ``max_records``, ``max_bytes``
        counting ``overhead_bytes`` per record, and ``max_span`` between oldest and newest."""
        chunk: list[Record] = []
        size = 0
        oldest = newest = None
        for record in records:
            if chunk:
                assert oldest is not None and newest is not None
                span_ok = self.max_span is None or (
                    max(newest, record.time) - min(oldest, record.time) <= self.max_span
                )
                if not (
                    len(chunk) < self.max_records
                    and size + record.size + self.overhead_bytes <= self.max_bytes
                    and span_ok
                ):
                    yield chunk
                    chunk, size, oldest, newest = [], 0, None, None
            chunk.append(record)
            size += record.size + self.overhead_bytes
            oldest = record.time if oldest is None else min(oldest, record.time)
            newest = record.time if newest is None else max(newest, record.time)
        if chunk:
            yield chunk

    def too_large(self, record: Record) -> bool:
        return record.size + self.overhead_bytes > self.max_record_bytes
