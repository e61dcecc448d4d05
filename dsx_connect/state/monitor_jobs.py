"""The rolling monitor job: where a connector's change events (scan requests without a job) go.

Each connector has at most one current monitor job (kind ``monitor``), named by
``keys.monitor_job(connector_uuid)``. Requests without ``scan_job_id`` (the watcher, webhooks, a
1.x connector's single requests) join it instead of making a job each, so the job index and the
per-job keys grow with connectors and days, not with events. A monitor job never finishes
enumerating; it rolls over to a new one

* after ``DSXCONNECT_JOBS__MONITOR_ROLL_S`` (a day by default): the old one is then marked
  enumerated with what it accepted, so it completes once its last items have results;
* when an operator cancelled it, or the stall sweep failed it: the next event starts a new one.

Its hash expires ``DSXCONNECT_JOBS__RETAIN_S`` after its last event (each accept refreshes the
TTL, ``JobStore.ensure``), its pending hash with the request states, and its results index with
the hash (the result store copies the job's TTL onto it).
"""

from __future__ import annotations

import hashlib
import re
import secrets
import time

import redis

from dsx_connect import keys
from dsx_connect.state.job_scripts import COMPLETE_CHECK_LUA
from dsx_connect.state.scripts import lua
from shared.models import utcnow_iso

KIND = "monitor"
#: every monitor job id starts with it; the intake refuses it in a connector's ``scan_job_id``
ID_PREFIX = "monitor-"

# Returns the current monitor job id, creating it (dsx_connect/state/lua/monitor_current.lua).
_CURRENT_LUA = COMPLETE_CHECK_LUA + lua("monitor_current")

_UNSAFE = re.compile(r"[^A-Za-z0-9._-]")


def monitor_job_id(connector_uuid: str, now: float) -> str:
    """A new monitor job's id: ``monitor-<uuid>-<unix seconds>-<8 random hex>`` (only
    ``[A-Za-z0-9._-]``). A uuid that had to be changed to fit gets a digest of itself too: ``acme:1``
    and ``acme-1`` would otherwise name one job, and the second connector would take over the
    first's monitor job. The random part makes the id unpredictable: nobody can create the job a
    connector's monitor job will roll over into (the script also refuses a candidate that exists)."""
    safe = _UNSAFE.sub("-", connector_uuid)[:64]
    if safe != connector_uuid:
        safe = f"{safe[:55]}-{hashlib.sha256(connector_uuid.encode()).hexdigest()[:8]}"
    return f"{ID_PREFIX}{safe}-{int(now)}-{secrets.token_hex(4)}"


class MonitorJobs:
    """Finds (or starts) each connector's current monitor job, atomically across API replicas."""

    def __init__(self, client: redis.Redis, roll_s: float, retain_s: int) -> None:
        self.redis = client
        self.roll_s = roll_s
        self.retain_s = retain_s
        self._current = client.register_script(_CURRENT_LUA)

    def current(self, connector_uuid: str, connector_name: str = "", now: float | None = None) -> str:
        """The id of the connector's running monitor job; a new one when there is none or it rolled over."""
        now = time.time() if now is None else now
        pointer = keys.monitor_job(connector_uuid)
        # the script refuses when another replica moved the pointer since it was read, or when the
        # candidate exists already (a new random part then)
        while True:
            raw = self.redis.get(pointer)
            current = raw.decode() if isinstance(raw, bytes) else (raw or "")
            candidate = monitor_job_id(connector_uuid, now)
            current_keys = [keys.job(current), keys.job_pending(current), keys.job_due(current)]
            job_id = self._current(
                keys=[pointer, keys.JOBS_ACTIVE, keys.JOBS_INDEX, keys.job(candidate)]
                + (current_keys if current else []),
                args=[
                    current,
                    candidate,
                    utcnow_iso(),
                    now,
                    self.roll_s,
                    self.retain_s,
                    connector_uuid,
                    connector_name,
                ],
            )
            if job_id:
                break
        return str(job_id)
