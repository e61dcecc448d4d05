"""Schedules in Redis: the one module that reads and writes their keys (``dsx_connect.keys``).

The cron rules and the scheduler's loop are ``dsx_connect.schedules``; this is their storage: the
definitions, each schedule's run state, the scanner identity the leader saw last, and the claims the
leader makes, fenced by its lease (``state.schedule_lease``).
"""

from __future__ import annotations

import logging
import time
from enum import IntEnum

import redis
from pydantic import ValidationError

from dsx_connect import keys
from dsx_connect.schedules.models import ScheduleRecord, ScheduleRun, ScheduleSpec, iso
from dsx_connect.state.scripts import lua

log = logging.getLogger(__name__)

_CLAIM_LUA = lua("schedule_claim")  # dsx_connect/state/lua/schedule_claim.lua


class Claim(IntEnum):
    """The outcome of claiming a slot or a scanner change."""

    GONE = -2  # the schedule was deleted meanwhile
    LOST_LEASE = -1
    TAKEN = 0
    CLAIMED = 1


#: what a claimed slot's state says until its start is recorded: a leader that stopped between the
#: two left the previous run's job id and error there, as if they were this slot's
NOT_CONFIRMED = "claimed; the start was not confirmed (a leader that stopped here loses this slot)"


class ScheduleStore:
    """Schedules by connector uuid, their run state, and the fenced claims of the leader."""

    def __init__(self, client: redis.Redis, claim_ttl_s: int = 35 * 86400) -> None:
        self.redis = client
        self.claim_ttl_ms = claim_ttl_s * 1000
        self._claim = client.register_script(_CLAIM_LUA)

    # ---- definitions --------------------------------------------------------------------------

    def put(self, connector_uuid: str, spec: ScheduleSpec, now: float | None = None) -> ScheduleRecord:
        """Create or replace a schedule. Slots count from now, unless cron and zone are unchanged
        (then a slot due a moment ago is not lost to an edit of the other fields)."""
        now = time.time() if now is None else now
        previous = self.get(connector_uuid)
        # a disabled schedule's slots were never run: enabling it again must not start the one that
        # fell while it was off, so its slots count from now as for a new cron
        same_slots = (
            previous is not None
            and (previous.cron, previous.timezone) == (spec.cron, spec.timezone)
            and (previous.enabled or not spec.enabled)
        )
        record = ScheduleRecord(
            **spec.model_dump(),
            connector_uuid=connector_uuid,
            since_ts=previous.since_ts if same_slots and previous is not None else now,
            updated=iso(now),
        )
        self.redis.hset(keys.SCHEDULES, connector_uuid, record.model_dump_json())
        return record

    def get(self, connector_uuid: str) -> ScheduleRecord | None:
        """The schedule of ``connector_uuid``; None when it has none, or none this version can load."""
        raw = self.redis.hget(keys.SCHEDULES, connector_uuid)
        return None if raw is None else _load(connector_uuid, raw)

    def all(self) -> list[ScheduleRecord]:
        """Every schedule, by connector uuid; one that no longer loads is logged and left out, so it
        stops no other (a zone the time zone database dropped, a record of a newer version)."""
        raw = self.redis.hgetall(keys.SCHEDULES)
        loaded = (_load(uuid, raw[uuid]) for uuid in sorted(raw))
        return [record for record in loaded if record is not None]

    def delete(self, connector_uuid: str) -> bool:
        """Remove a schedule and its run state; whether there was one. (Claims expire on their own.)"""
        pipe = self.redis.pipeline()
        pipe.hdel(keys.SCHEDULES, connector_uuid)
        pipe.delete(keys.schedule_state(connector_uuid))
        removed, _ = pipe.execute()
        return bool(removed)

    # ---- runs ---------------------------------------------------------------------------------

    def last_slot_ts(self, connector_uuid: str) -> float:
        value = self.redis.hget(keys.schedule_state(connector_uuid), "last_slot_ts")
        return float(value) if value else 0.0

    def run(self, connector_uuid: str) -> ScheduleRun:
        """What the scheduler last did for the schedule."""
        data = self.redis.hgetall(keys.schedule_state(connector_uuid))
        slot = data.get("last_slot_ts")
        return ScheduleRun(
            last_slot=iso(float(slot)) if slot else None,
            last_job_id=data.get("last_job_id") or None,
            last_trigger=data.get("last_trigger") or None,
            last_started=data.get("last_started") or None,
            last_error=data.get("last_error") or None,
        )

    def record_start(self, connector_uuid: str, trigger: str, job_id: str | None, error: str | None) -> None:
        """Note the outcome of a start (a job, or why there is none), unless the schedule was deleted."""
        if not self.redis.hexists(keys.SCHEDULES, connector_uuid):
            return
        self.redis.hset(
            keys.schedule_state(connector_uuid),
            mapping={
                "last_trigger": trigger,
                "last_job_id": job_id or "",
                "last_error": error or "",
                "last_started": iso(time.time()) if job_id else "",
            },
        )

    def claim_slot(self, token: str, connector_uuid: str, slot_ts: float) -> Claim:
        """Claim a slot for the lease holder ``token``; the schedule's last slot moves with the claim."""
        slot = int(slot_ts)
        return self._claim_key(
            token, keys.schedule_slot(connector_uuid, slot), connector_uuid, "last_slot_ts", str(slot)
        )

    def claim_change(self, token: str, connector_uuid: str, change: str) -> Claim:
        """Claim the rescan of a connector for one scanner identity change (``change``: a digest)."""
        return self._claim_key(
            token, keys.schedule_identity(connector_uuid, change), connector_uuid, "last_change", change
        )

    def _claim_key(self, token: str, key: str, connector_uuid: str, field: str, value: str) -> Claim:
        result = self._claim(
            keys=[keys.SCHEDULER_LEADER, key, keys.schedule_state(connector_uuid), keys.SCHEDULES],
            args=[
                token, token, self.claim_ttl_ms, connector_uuid, field, value,
                "last_job_id", "", "last_started", "", "last_error", NOT_CONFIRMED,
            ],
        )  # fmt: skip
        return Claim(int(result))

    # ---- the scanner identity -----------------------------------------------------------------

    def scanner_identity(self) -> str | None:
        value = self.redis.get(keys.SCANNER_IDENTITY)
        return None if value is None else str(value)

    def identity_changes(self) -> int:
        """How many scanner identity changes the leaders have handled."""
        value = self.redis.get(keys.SCANNER_IDENTITY_CHANGES)
        return int(value) if value else 0

    def set_scanner_identity(self, identity: str, *, changed: bool = False) -> None:
        """Keep ``identity`` as the one seen last; ``changed``: it replaced another (one more change)."""
        pipe = self.redis.pipeline()
        pipe.set(keys.SCANNER_IDENTITY, identity)
        if changed:
            pipe.incr(keys.SCANNER_IDENTITY_CHANGES)
        pipe.execute()


def _load(connector_uuid: str, raw: str) -> ScheduleRecord | None:
    try:
        return ScheduleRecord.model_validate_json(raw)
    except ValidationError as exc:
        log.error(
            "schedule of connector %s cannot be loaded and does not run (replace it with PUT): %s",
            connector_uuid,
            exc.errors(include_url=False, include_input=False),
            extra={"connector_uuid": connector_uuid},
        )
        return None
