"""Per-source failure counters in Redis, shared by every API replica (``/auth/login``, DSX-HMAC).

A fixed one-minute window per source address and kind: ``dsxc:auth:rl:{kind}:{source}:{minute}``,
expiring after two minutes. Only failures are counted, so a source that authenticates correctly is
never slowed; past the limit every attempt of that kind from the source answers 429 until the
clock minute ends (so up to twice the limit can pass within 60 s across a boundary).
:meth:`FailureLimiter.blocked` costs one Redis ``GET``; it is checked on every request where a
request is expensive or guessable (a login, an API key or token), or after this replica has seen
the source fail (signatures, so the signed hot path pays nothing while it succeeds).
"""

from __future__ import annotations

import time

import redis

from dsx_connect import keys
from dsx_connect.auth.settings import AuthSettings


class FailureLimiter:
    """Counts failures of one ``kind`` per source and says when a source is over ``limit``."""

    def __init__(self, client: redis.Redis, kind: str, limit: int, window_s: int = 60) -> None:
        self.redis = client
        self.kind = kind
        self.limit = limit
        self.window_s = window_s

    def _key(self, source: str, now: float) -> str:
        return keys.rate_limit(self.kind, source, int(now // self.window_s))

    def retry_after(self, now: float | None = None) -> int:
        now = time.time() if now is None else now
        return max(1, int(self.window_s - now % self.window_s))

    def blocked(self, source: str) -> bool:
        """Whether ``source`` failed ``limit`` times or more in the current window."""
        count = self.redis.get(self._key(source, time.time()))
        return count is not None and int(count) >= self.limit

    def failed(self, source: str) -> bool:
        """Count one failure; True when the source is now over the limit."""
        return self.count_failure(source) >= self.limit

    def count_failure(self, source: str) -> int:
        """Count one failure; the source's failures in the current window, this one included."""
        key = self._key(source, time.time())
        pipe = self.redis.pipeline(transaction=False)
        pipe.incr(key)
        pipe.expire(key, 2 * self.window_s)
        count, _ = pipe.execute()
        return int(count)


def guess_limiter(client: redis.Redis, settings: AuthSettings) -> FailureLimiter:
    """Failed logins, wrong API keys and wrong enrollment tokens of a source: one budget,
    ``AUTH__LOGIN_ATTEMPTS_PER_MIN`` a minute, so a secret cannot be guessed on another route."""
    return FailureLimiter(client, "login", settings.login_attempts_per_min)
