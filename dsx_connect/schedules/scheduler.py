"""The scheduler: every API replica runs one, and only the holder of the lease starts scans.

Each :meth:`Scheduler.tick` (every ``DSXCONNECT_SCHEDULER__POLL_S``) renews or takes the lease; the
leader then, for each enabled schedule, finds the newest slot at or before now. A slot newer than the
schedule's last handled slot (and than the schedule itself) is claimed in one script that checks the
lease token and sets ``schedule:{uuid}:{slot}`` only if absent, so two replicas, or a leader and
its successor, never start one slot twice. Slots missed while no replica ran are not replayed: only
the newest one runs, once, when a scheduler is back. A start is at most once: a leader that dies
between its claim and the connector's answer loses that slot (the state says which slot ran last).
With ``DSXCONNECT_REDIS_WAIT_REPLICAS``, a claim is confirmed on the replicas (``WAIT``) before the
connector is asked, so a failover cannot hand a replica without the claim to a new leader.

Every ``DSXCONNECT_SCHEDULER__SCANNER_POLL_S`` the leader reads the scanner's identity; when it
differs from the one last seen (kept in Redis, so a change while no replica ran counts too), each
schedule with ``rescan_on_scanner_change`` gets one full scan, claimed per (change, connector); a
change is named by both identities and the number of changes before it, so rules re-applied after
a rollback rescan again. A new identity counts once read on ``IDENTITY_STABLE_READS`` polls in a row
(scanner replicas mid-rollout answer old and new identities in turn); a fleet that keeps answering
both after a change needs one identity on ``MIXED_STABLE_READS`` polls in a row (:class:`IdentitySettling`).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field

import anyio
import redis

from dsx_connect.redis_client import NotReplicated
from dsx_connect.schedules import cron
from dsx_connect.schedules.identity import change_digest
from dsx_connect.schedules.models import ScheduleRecord
from dsx_connect.state.schedule_lease import LeaderLease
from dsx_connect.state.schedules import Claim, ScheduleStore

log = logging.getLogger(__name__)

#: starts a full scan of a connector (uuid, trigger) and returns its job id; raises ScanNotStarted
StartScan = Callable[[str, str], str]
#: the scanner's identity now, or None when unknown
ReadIdentity = Callable[[], str | None]


#: polls in a row that must read a new scanner identity before it counts as a change
IDENTITY_STABLE_READS = 3
#: the identity a change replaced, read again within this many polls: the scanners answer both
#: (a rollout stuck half-way, replicas whose ClamAV databases update out of step) ...
MIXED_WINDOW_POLLS = 20
#: ... and then one identity must be read on this many polls in a row before any change counts
MIXED_STABLE_READS = 20


class ScanNotStarted(Exception):
    """A scheduled start that did not happen (connector not registered, unreachable, refusing)."""


@dataclass
class TickReport:
    """What one tick did (for tests and logs)."""

    leader: bool = False
    started: list[tuple[str, str, str]] = field(default_factory=list)  # (uuid, trigger, job id)
    failed: list[tuple[str, str, str]] = field(default_factory=list)  # (uuid, trigger, reason)


class Scheduler:
    """One replica's scheduler; ``clock`` (Unix seconds) is injectable so tests never wait for a minute."""

    def __init__(
        self,
        store: ScheduleStore,
        lease: LeaderLease,
        start: StartScan,
        *,
        identity: ReadIdentity | None = None,
        scanner_poll_s: float = 60.0,
        clock: Callable[[], float] = time.time,
        durable: Callable[[], None] = lambda: None,
    ) -> None:
        self.store = store
        self.lease = lease
        self.start = start
        self.identity = identity
        self.scanner_poll_s = scanner_poll_s
        self.clock = clock
        #: returns once a claim is on the Redis replicas (``WAIT``), else raises ``NotReplicated``
        self.durable = durable
        self._identity_read_at: float | None = None
        self._settling = IdentitySettling()

    def tick(self) -> TickReport:
        """One round: hold the lease, then start what is due (only as the leader)."""
        report = TickReport(leader=self.lease.hold())
        if not report.leader:
            return report
        now = self.clock()
        schedules = self.store.all()
        for schedule in schedules:
            try:
                if not self._run_due_slot(schedule, now, report):
                    return report  # the lease was lost: stop; the new leader carries on
            except redis.RedisError:
                raise
            except Exception:  # one schedule's fault stops no other
                log.exception(
                    "schedule of connector %s skipped", schedule.connector_uuid,
                    extra={"connector_uuid": schedule.connector_uuid},
                )  # fmt: skip
        if self.identity is not None and (
            self._identity_read_at is None or now - self._identity_read_at >= self.scanner_poll_s
        ):
            self._identity_read_at = now
            self._rescan_on_change(schedules, report)
        return report

    def _run_due_slot(self, schedule: ScheduleRecord, now: float, report: TickReport) -> bool:
        if not (schedule.enabled and schedule.cron):
            return True
        slot = cron.latest_slot(schedule.cron, schedule.timezone, now)
        if slot is None or slot <= max(schedule.since_ts, self.store.last_slot_ts(schedule.connector_uuid)):
            return True
        uuid = schedule.connector_uuid
        return self._claim_and_start(
            uuid,
            "schedule",
            lambda token: self.store.claim_slot(token, uuid, slot),
            report,
            f"slot {slot:.0f}",
        )

    def _rescan_on_change(self, schedules: list[ScheduleRecord], report: TickReport) -> None:
        current = self.identity() if self.identity else None
        if current is None:
            return  # unknown: keep the last one seen, start nothing
        previous = self.store.scanner_identity()
        settled = self._settling.read(current)
        if previous is not None and current != previous and not settled:
            return  # several scanner replicas mid-rollout answer both: act once one identity holds
        if previous is not None and previous != current:
            self._settling.changed(previous)
            change = change_digest(previous, current, self.store.identity_changes())
            log.info("scanner identity changed: %r -> %r", previous, current)
            for uuid in (s.connector_uuid for s in schedules if s.enabled and s.rescan_on_scanner_change):
                claim = self._change_claim(uuid, change)
                if not self._claim_and_start(uuid, "scanner_change", claim, report, change):
                    return  # lost the lease: the next leader sees the change again (claims hold)
        if previous != current:
            self.store.set_scanner_identity(current, changed=previous is not None)

    def _change_claim(self, connector_uuid: str, change: str) -> Callable[[str], Claim]:
        return lambda token: self.store.claim_change(token, connector_uuid, change)

    def _claim_and_start(
        self, connector_uuid: str, trigger: str, claim: Callable[[str], Claim], report: TickReport, label: str
    ) -> bool:
        """Claim with the lease token, then start; False when the lease is gone. The lease is renewed
        first: starts call connectors, and a tick with several slow ones may outlast a renewal period."""
        if self.lease.token is None or not self.lease.renew():
            return False
        token = self.lease.token
        outcome = claim(token)
        if outcome is Claim.LOST_LEASE:
            log.warning("scheduler lost its lease before claiming %s of connector %s", label, connector_uuid)
            self.lease.token = None
            return False
        if outcome in (Claim.TAKEN, Claim.GONE):
            return True
        try:
            # the claim must survive a failover before the connector is asked, or the promoted
            # replica's leader would start this slot again; unconfirmed, the slot is not started
            self.durable()
        except NotReplicated as exc:
            log.error("scheduled scan not started (%s, %s): %s", trigger, label, exc)
            self.store.record_start(connector_uuid, trigger, None, f"claim not replicated: {exc}")
            report.failed.append((connector_uuid, trigger, f"claim not replicated: {exc}"))
            return True
        try:
            job_id = self.start(connector_uuid, trigger)
        except ScanNotStarted as exc:
            log.warning(
                "scheduled scan not started (%s, %s): %s",
                trigger,
                label,
                exc,
                extra={"connector_uuid": connector_uuid},
            )
            self.store.record_start(connector_uuid, trigger, None, str(exc))
            report.failed.append((connector_uuid, trigger, str(exc)))
            return True
        log.info(
            "scheduled scan started (%s, %s)",
            trigger,
            label,
            extra={"connector_uuid": connector_uuid, "job_id": job_id},
        )
        self.store.record_start(connector_uuid, trigger, job_id, None)
        report.started.append((connector_uuid, trigger, job_id))
        return True


class IdentitySettling:
    """When a scanner identity read on polls counts as the scanner's (one leader's memory).

    Scanner replicas behind one address answer their own identities while a rollout is under way:
    a new identity counts once read on ``IDENTITY_STABLE_READS`` polls in a row (without this, each
    alternation was a change and started a rescan of every flagged connector). A fleet that stays
    mixed (a rollout stuck half-way, replicas whose ClamAV databases update out of step) reads three
    in a row of either identity often: once the identity a change replaced is read again within
    ``MIXED_WINDOW_POLLS``, the fleet counts as mixed, and no change counts until one identity has
    been read on ``MIXED_STABLE_READS`` polls in a row."""

    def __init__(self) -> None:
        self._run: str | None = None  # the identity the last polls read, and on how many in a row
        self._run_length = 0
        self._polls = 0
        self._replaced: tuple[str, int] | None = None  # the identity the last change replaced, and when
        self.mixed = False

    def read(self, current: str) -> bool:
        """Record one poll's identity; whether it has held long enough to count as the scanner's."""
        self._polls += 1
        if current == self._run:
            self._run_length += 1
        else:
            self._run, self._run_length = current, 1
        if self._replaced is not None and not self.mixed:
            replaced, at = self._replaced
            if current == replaced and self._polls - at <= MIXED_WINDOW_POLLS:
                self.mixed = True
                log.warning(
                    "the scanner answers several identities (%r came back after the change from it): "
                    "no rescan on a scanner change until one holds for %d polls in a row",
                    replaced,
                    MIXED_STABLE_READS,
                )
        if self.mixed and self._run_length >= MIXED_STABLE_READS:
            self.mixed = False
            log.info("the scanner answers one identity again: %r", current)
        return self._run_length >= (MIXED_STABLE_READS if self.mixed else IDENTITY_STABLE_READS)

    def changed(self, previous: str) -> None:
        """A change from ``previous`` to the identity read last was acted on."""
        self._replaced = (previous, self._polls)


@asynccontextmanager
async def run_scheduler(scheduler: Scheduler, poll_s: float) -> AsyncIterator[Scheduler]:
    """Tick ``scheduler`` in the background while the block runs; give the lease up at the end."""

    async def loop() -> None:
        while True:
            try:
                await anyio.to_thread.run_sync(scheduler.tick)
            except redis.RedisError as exc:
                log.warning("scheduler tick skipped: %s", exc)
            except Exception:
                log.exception("scheduler tick failed")
            await anyio.sleep(poll_s)

    task = asyncio.create_task(loop(), name="scan-scheduler")
    try:
        yield scheduler
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        try:
            await anyio.to_thread.run_sync(scheduler.lease.release)
        except redis.RedisError:
            pass  # it expires on its own
