"""A circuit breaker on the scanner, shared by every worker through Redis.

While the scanner is down, batches wait for it instead of burning their items' retries: after
``breaker_threshold`` batches in a row whose every scan failed on the scanner, the breaker opens for
``breaker_open_s`` (doubling up to ``breaker_open_max_s`` while it keeps failing). Items that meet
an open breaker are re-enqueued for when it may close, their attempt count untouched. The first
batch after the open period probes the scanner (half-open), and only one: the worker that takes the
probe claim (a key that expires, should that worker die); the others keep waiting. One success
closes the breaker, a failure of the probe reopens it.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import redis

from dsx_connect import keys
from dsx_connect.state.scripts import lua

_FAILED_LUA = lua("breaker_failed")  # dsx_connect/state/lua/breaker_failed.lua


@dataclass(frozen=True)
class BreakerState:
    state: str  # closed | open | half_open
    open_until: float
    last_error: str

    @property
    def is_open(self) -> bool:
        return self.state == "open"


class ScannerBreaker:
    def __init__(
        self, client: redis.Redis, threshold: int, open_s: float, open_max_s: float, probe_ttl_s: float = 60.0
    ) -> None:
        self.redis = client
        self.threshold = threshold
        self.open_s = open_s
        self.open_max_s = open_max_s
        self.probe_ttl_ms = max(int(probe_ttl_s * 1000), 1)
        self._failed = client.register_script(_FAILED_LUA)

    def take_probe(self) -> bool:
        """Claim the half-open probe; False when another worker holds it."""
        return bool(self.redis.set(keys.SCANNER_BREAKER_PROBE, "1", nx=True, px=self.probe_ttl_ms))

    def release_probe(self) -> None:
        self.redis.delete(keys.SCANNER_BREAKER_PROBE)

    def state(self, now: float | None = None) -> BreakerState:
        now = time.time() if now is None else now
        data = self.redis.hgetall(keys.SCANNER_BREAKER)
        open_until = float(data.get("open_until") or 0)
        state = data.get("state") or "closed"
        if state == "open" and now >= open_until:
            state = "half_open"
        return BreakerState(state, open_until, data.get("last_error", ""))

    def record_failure(self, error: str, probing: bool = False) -> float:
        """A batch whose scans failed on the scanner; returns when the breaker may close (0: it is closed).

        ``probing``: the batch was the half-open probe, so one failure reopens the breaker.
        """
        threshold = 1 if probing else self.threshold
        args = [threshold, self.open_s, self.open_max_s, time.time(), error[:500]]
        reopen_at = float(self._failed(keys=[keys.SCANNER_BREAKER], args=args))
        if probing:
            self.redis.delete(keys.SCANNER_BREAKER_PROBE)
        return reopen_at

    def record_success(self) -> None:
        """The scanner answered: close the breaker (a single read when it is already closed)."""
        state, failures = self.redis.hmget(keys.SCANNER_BREAKER, "state", "failures")
        if (state or "closed") != "closed" or (failures or "0") != "0":
            mapping = {"state": "closed", "failures": 0, "times_opened": 0, "open_until": 0}
            pipe = self.redis.pipeline(transaction=False)
            pipe.hset(keys.SCANNER_BREAKER, mapping=mapping)
            pipe.delete(keys.SCANNER_BREAKER_PROBE)
            pipe.execute()
