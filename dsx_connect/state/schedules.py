"""Schedules in Redis: the one module that reads and writes their keys (``dsx_connect.keys``).

The cron rules and the scheduler's loop are ``dsx_connect.schedules``; this is their storage: the
definitions, each schedule's run state, the scanner identity the leader saw last, and the claims the
leader makes, fenced by its lease (``state.schedule_lease``).
"""

from __future__ import annotations

import time
from enum import IntEnum

import redis

from dsx_connect import keys
from dsx_connect.schedules.models import ScheduleRecord, ScheduleRun, ScheduleSpec, iso
from dsx_connect.state.scripts import lua

_CLAIM_LUA = lua("schedule_claim")  # dsx_connect/state/lua/schedule_claim.lua


class Claim(IntEnum):
    """The outcome of claiming a slot or a scanner change."""

    LOST_LEASE = -1
    TAKEN = 0
    CLAIMED = 1


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
        same_slots = previous is not None and (previous.cron, previous.timezone) == (spec.cron, spec.timezone)
        record = ScheduleRecord(
            **spec.model_dump(),
            connector_uuid=connector_uuid,
            since_ts=previous.since_ts if same_slots and previous is not None else now,
            updated=iso(now),
        )
        self.redis.hset(keys.SCHEDULES, connector_uuid, record.model_dump_json())
        return record

    def get(self, connector_uuid: str) -> ScheduleRecord | None:
        raw = self.redis.hget(keys.SCHEDULES, connector_uuid)
        return None if raw is None else ScheduleRecord.model_validate_json(raw)

    def all(self) -> list[ScheduleRecord]:
        """Every schedule, by connector uuid."""
        raw = self.redis.hgetall(keys.SCHEDULES)
        return [ScheduleRecord.model_validate_json(raw[uuid]) for uuid in sorted(raw)]

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
            keys=[keys.SCHEDULER_LEADER, key, keys.schedule_state(connector_uuid)],
            args=[token, token, self.claim_ttl_ms, field, value],
        )
        return Claim(int(result))

    # ---- the scanner identity -----------------------------------------------------------------

    def scanner_identity(self) -> str | None:
        value = self.redis.get(keys.SCANNER_IDENTITY)
        return None if value is None else str(value)

    def set_scanner_identity(self, identity: str) -> None:
        self.redis.set(keys.SCANNER_IDENTITY, identity)
