"""The scheduler's leader lease: one key in Redis, set with ``SET NX PX`` and renewed by its holder.

The value is a token unique to each acquisition. Renewing and releasing check it in one script
(``lua/scheduler_lease.lua``), and every claim the leader makes (``lua/schedule_claim.lua``) checks
it too: a replica that lost the lease (paused past its TTL, cut off from Redis) and has not noticed
yet cannot start anything.
"""

from __future__ import annotations

import os
import socket
import uuid

import redis

from dsx_connect import keys
from dsx_connect.state.scripts import lua

_RENEW_LUA = lua("scheduler_lease")  # dsx_connect/state/lua/scheduler_lease.lua


def replica_name() -> str:
    """This process, as the lease names its holder: ``host:pid``."""
    return f"{socket.gethostname()}:{os.getpid()}"


class LeaderLease:
    """Acquire, hold and give up the lease; :attr:`token` is set while this instance holds it."""

    def __init__(self, client: redis.Redis, ttl_s: float, holder: str | None = None) -> None:
        self.redis = client
        self.ttl_ms = max(int(ttl_s * 1000), 1)
        self.holder = holder or replica_name()
        self.token: str | None = None
        self._renew = client.register_script(_RENEW_LUA)

    def hold(self) -> bool:
        """Renew the lease if this instance holds it, else try to take it; whether it holds it now."""
        if self.token is not None and self.renew():
            return True
        token = f"{self.holder}/{uuid.uuid4().hex[:12]}"
        if self.redis.set(keys.SCHEDULER_LEADER, token, nx=True, px=self.ttl_ms):
            self.token = token
            return True
        return False

    def renew(self) -> bool:
        """Extend the lease this instance holds; False (and no token) when it no longer holds it."""
        if self.token is None:
            return False
        if self._renew(keys=[keys.SCHEDULER_LEADER], args=[self.token, self.ttl_ms]):
            return True
        self.token = None
        return False

    def release(self) -> None:
        """Give the lease up at once (a clean shutdown), so another replica need not wait for its TTL."""
        if self.token is not None:
            self._renew(keys=[keys.SCHEDULER_LEADER], args=[self.token, 0])
            self.token = None


def current_leader(client: redis.Redis) -> str | None:
    """The replica holding the lease now (``host:pid``), or None."""
    token = client.get(keys.SCHEDULER_LEADER)
    if token is None:
        return None
    text = token.decode() if isinstance(token, bytes) else str(token)
    return text.rsplit("/", 1)[0]
