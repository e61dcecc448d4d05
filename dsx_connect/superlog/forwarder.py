"""The forwarder: one thread per destination drains its buffer into its sink.

Each thread holds its destination's lock (renewed while it works or waits, and while a call is in
flight: a receiver slower than ``lock_ttl_s`` keeps it), takes a batch (oldest first), redacts and
encodes each event, cuts the batch into calls the service accepts, and acknowledges each call as soon
as it succeeded. While the receiver is down it retries the same
events with capped exponential backoff and jitter, so they are delivered once it recovers; new
events keep piling up in the bounded buffer meanwhile, never in the scan path. A refused call is
split in halves until the refused events are isolated and set aside (``rejected``).

Any number of forwarders may run (several workers, a standalone process): the lock lets exactly one
work on a destination at a time, and a dead one's lock expires after ``lock_ttl_s``. A forwarder that
finds its lock gone (a call outlived it, Redis was away) does not acknowledge what it sent: it backs
off like after a failed call, then holds and takes anew (the events may be sent again: at least once).
"""

from __future__ import annotations

import json
import logging
import os
import socket
import threading
import uuid
from collections.abc import Callable, Sequence
from typing import Any

import redis

from dsx_connect.settings import Settings
from dsx_connect.state.feed import DestinationBuffer, LockLost
from dsx_connect.superlog.config import SuperlogSettings
from dsx_connect.superlog.events import Redactor
from dsx_connect.superlog.sink import Record, Sink
from shared.backoff import equal_jitter
from shared.errors import PermanentError, RetryableError

log = logging.getLogger(__name__)


def build_sink(destination: str, settings: Settings) -> Sink:
    """The sink of one destination, configured from the core's settings."""
    if destination == "syslog":
        from dsx_connect.superlog.syslog import SyslogSink

        return SyslogSink(settings.syslog)
    if destination == "splunk":
        from dsx_connect.superlog.splunk import SplunkSink

        return SplunkSink(settings.superlog.splunk)
    if destination == "cloudwatch":
        from dsx_connect.superlog.cloudwatch import CloudWatchSink

        return CloudWatchSink(settings.superlog.cloudwatch)
    if destination == "sentinel":
        from dsx_connect.superlog.sentinel import SentinelSink

        return SentinelSink(settings.superlog.sentinel)
    raise ValueError(f"unknown feed destination {destination!r}")


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def backoff_s(attempt: int, base: float, ceiling: float) -> float:
    """Capped exponential backoff with jitter for failure number ``attempt`` (1-based): the core's one
    backoff (``shared.backoff``)."""
    return equal_jitter(attempt, base, ceiling)


class LockKeeper:
    """Renews a destination's lock every third of its TTL while one call is in flight, so a receiver
    slower than the TTL does not let the lock expire under the call. ``lost`` tells, once the call is
    over, that a renewal found the lock gone (expired or held by another forwarder): the call's events
    must then not be acknowledged as ours."""

    def __init__(self, buffer: DestinationBuffer, owner: str, lock_ttl_s: float) -> None:
        self.buffer = buffer
        self.owner = owner
        self.interval_s = max(lock_ttl_s / 3, 0.05)
        self.lost = False
        self._done = threading.Event()
        self._thread = threading.Thread(target=self._renew, name=f"lock-{buffer.destination}", daemon=True)

    def __enter__(self) -> LockKeeper:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._done.set()
        self._thread.join()

    def _renew(self) -> None:
        while not self._done.wait(self.interval_s):
            try:
                held = self.buffer.hold(self.owner)
            except redis.RedisError:
                continue  # Redis unreachable for a moment: the ack's own check decides
            if held != 1:  # 0: another forwarder holds it; 2: it had expired (a successor may have been)
                self.lost = True
                return


class Forwarder:
    """Delivers one destination's buffer; ``run`` loops in a thread, ``step`` does one batch (tests)."""

    def __init__(
        self, client: redis.Redis, sink: Sink, settings: SuperlogSettings, owner: str | None = None
    ) -> None:
        self.sink = sink
        self.destination = sink.name
        self.settings = settings
        self.owner = owner or f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
        self.buffer = DestinationBuffer(client, sink.name, settings.lock_ttl_s, settings.rejected_retain)
        self.redact = Redactor(settings.redact)
        self.failures = 0

    # -- one batch -------------------------------------------------------------------------------

    def step(self) -> int:
        """Take one batch and deliver it; returns how many events were handled (0: nothing waiting, or
        another forwarder holds the destination). Raises RetryableError while the receiver is down."""
        if not self.buffer.hold(self.owner) and not self._take_over_dead_holder():
            return 0
        raws = self.buffer.take(self.owner, self.settings.batch_max_events)
        if raws:
            self.deliver(raws)
        return len(raws)

    def _take_over_dead_holder(self) -> bool:
        """A holder on this host whose process is gone (a worker killed, Redis stopped first) left its
        lock behind: take it over now rather than after ``lock_ttl_s``."""
        holder = self.buffer.holder()
        if holder is None:
            return False
        host, _, rest = holder.partition(":")
        pid = rest.partition(":")[0]
        if host != socket.gethostname() or not pid.isdigit() or _alive(int(pid)):
            return False
        if self.buffer.take_over(self.owner, holder):
            log.info("superlog %s: took over from %s, which exited", self.destination, holder)
            return True
        return False

    def deliver(self, raws: Sequence[str]) -> None:
        """Send ``raws`` (oldest first), acknowledging each call that went through."""
        pending: list[tuple[str, Record]] = []
        for raw in raws:
            record, problem = self._encode(raw)
            if record is None:
                self._send_all(pending)
                pending = []
                self.buffer.reject(self.owner, raw, problem)
                log.warning("superlog %s: event set aside: %s", self.destination, problem)
            else:
                pending.append((raw, record))
        self._send_all(pending)

    def _encode(self, raw: str) -> tuple[Record | None, str]:
        try:
            event = self.redact(json.loads(raw))
            record = self.sink.encode(event)
        except Exception as exc:
            return None, f"unreadable event: {type(exc).__name__}: {exc}"
        if self.sink.too_large(record):
            return None, f"event of {record.size} bytes over the {self.sink.max_record_bytes}-byte limit"
        return record, ""

    def _send_all(self, items: list[tuple[str, Record]]) -> None:
        start = 0
        for chunk in self.sink.chunks([record for _, record in items]):
            self._send_chunk(items[start : start + len(chunk)])
            start += len(chunk)

    def _send_chunk(self, items: list[tuple[str, Record]]) -> None:
        # renewed before each call (a slow batch keeps its lock); 2 would mean it had expired meanwhile,
        # and a successor may have claimed this batch's events: stop here rather than send them again
        if self.buffer.hold(self.owner) != 1:
            raise LockLost(self.destination)
        try:
            with LockKeeper(self.buffer, self.owner, self.settings.lock_ttl_s) as keeper:
                discarded = self.sink.send([record for _, record in items])
        except PermanentError as exc:
            if len(items) == 1:
                self.buffer.reject(self.owner, items[0][0], exc.message)
                log.warning("superlog %s: receiver refused an event: %s", self.destination, exc.message)
                return
            half = len(items) // 2  # narrow the refusal down to the events that cause it
            self._send_chunk(items[:half])
            self._send_chunk(items[half:])
            return
        if keeper.lost:  # the call outlived the lock: a successor may be sending these events already
            raise LockLost(f"{self.destination}: lock lost while a call was in flight")
        self.buffer.ack(self.owner, len(items), discarded)
        if self.failures:
            log.info(
                "superlog %s: delivering again after %d failed attempts", self.destination, self.failures
            )
            self.failures = 0

    # -- the loop --------------------------------------------------------------------------------

    def run(self, stop: threading.Event) -> None:
        """Deliver until ``stop`` is set; then release the lock and close the sink."""
        log.info("superlog forwarder for %s started (%s)", self.destination, self.owner)
        try:
            while not stop.is_set():
                try:
                    handled = self.step()
                except RetryableError as exc:
                    self._failed(exc.message, stop, getattr(exc, "retry_after_s", 0.0))
                    continue
                except LockLost as exc:
                    # not an immediate loop: the lock came back to us at once and the same events went
                    # out again (a receiver slower than the lock); back off, then hold and take anew
                    self._failed(
                        f"lock lost ({exc}): another forwarder may have taken over", stop, record=False
                    )
                    continue
                except redis.RedisError as exc:
                    self._failed(f"redis: {type(exc).__name__}: {exc}", stop, record=False)
                    continue
                except Exception as exc:
                    log.exception("superlog %s: unexpected error", self.destination)
                    self._failed(f"{type(exc).__name__}: {exc}", stop)
                    continue
                if handled < self.settings.batch_max_events:
                    self._wait(self.settings.flush_interval_s, stop)
        finally:
            try:
                self.buffer.release(self.owner)
            except redis.RedisError:
                pass
            self.sink.close()
            log.info("superlog forwarder for %s stopped", self.destination)

    def _failed(
        self, error: str, stop: threading.Event, retry_after_s: float = 0.0, record: bool = True
    ) -> None:
        self.failures += 1
        if record:
            try:
                self.buffer.failed(error)
            except redis.RedisError:
                pass
        delay = max(
            backoff_s(self.failures, self.settings.retry_backoff_s, self.settings.retry_backoff_max_s),
            retry_after_s,
        )
        if self.failures == 1 or self.failures % 10 == 0:
            log.warning(
                "superlog %s: delivery failed (%d in a row), retrying in %.1fs: %s",
                self.destination,
                self.failures,
                delay,
                error,
            )
        self._wait(delay, stop)

    def _wait(self, seconds: float, stop: threading.Event) -> None:
        """Sleep ``seconds`` (or until stopped) while keeping the lock."""
        slice_s = max(self.settings.lock_ttl_s / 3, 0.05)
        remaining = seconds
        while remaining > 0 and not stop.is_set():
            step = min(slice_s, remaining)
            if stop.wait(step):
                return
            remaining -= step
            if remaining > 0:
                try:
                    self.buffer.hold(self.owner)
                except redis.RedisError:
                    pass


class ForwarderGroup:
    """A forwarder thread per active destination, started and stopped together."""

    def __init__(
        self,
        client: redis.Redis,
        settings: Settings,
        sink_factory: Callable[[str, Settings], Sink] = build_sink,
        sinks: Sequence[Sink] | None = None,
        feed: SuperlogSettings | None = None,
    ) -> None:
        """The feed's active destinations; or ``sinks`` delivered with ``feed``'s buffers and retries
        (the notification webhooks reuse the machinery that way)."""
        self.stop_event = threading.Event()
        if sinks is None:
            sinks = [sink_factory(dest, settings) for dest in settings.superlog.active]
        self.forwarders = [Forwarder(client, sink, feed or settings.superlog) for sink in sinks]
        self.threads: list[threading.Thread] = []

    def start(self) -> ForwarderGroup:
        for forwarder in self.forwarders:
            thread = threading.Thread(
                target=forwarder.run,
                args=(self.stop_event,),
                name=f"superlog-{forwarder.destination}",
                daemon=True,
            )
            thread.start()
            self.threads.append(thread)
        return self

    def stop(self, timeout_s: float = 15.0) -> None:
        self.stop_event.set()
        for thread in self.threads:
            thread.join(timeout_s)

    def alive(self) -> bool:
        return any(thread.is_alive() for thread in self.threads)

    def describe(self) -> dict[str, Any]:
        return {f.destination: f.owner for f in self.forwarders}
