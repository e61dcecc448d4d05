"""The feed's buffers in Redis: one bounded list per destination, drained with the reliable-queue pattern.

Producer (the result step): the Lua call that stores a batch of results also pushes each newly
stored event's JSON onto the queue of every active destination (``LPUSH``, newest first) and trims
each queue to ``buffer_max_events``, counting what the trim dropped (the oldest) in the destination's
``dropped`` counter (``FEED_PUSH_LUA``, used by ``dsx_connect.state.results``). Stored and queued for
the feed in one atomic step: a worker dying in between cannot leave a result out of the feed.

Forwarder (one per destination at a time, elected by a lock with a TTL): ``take`` atomically moves
the oldest events of the queue to the destination's ``inflight`` list, or returns what is already
there (a batch a crashed forwarder, or our own last failed attempt, left behind); ``ack`` removes
the delivered ones (oldest first), ``reject`` sets aside one the receiver refused. Every write checks
that the caller still holds the lock, so a forwarder that lost it cannot delete its successor's work.
Events are re-sent only after a crash or a lost lock (at-least-once), never in normal operation.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import redis

from dsx_connect import keys
from shared.models import utcnow_iso

if TYPE_CHECKING:
    from dsx_connect.superlog.config import SuperlogSettings

log = logging.getLogger(__name__)

FEED_PUSH_LUA = """
-- KEYS[first..]: queue and state of each feed destination, in pairs. Pushes ``events`` (JSON) onto
-- every queue, trims each to ``bound`` (the oldest go) and returns what was dropped per destination.
local function feed_push(bound, events, first)
  local dropped = {}
  if #events == 0 then return dropped end
  for k = first, #KEYS, 2 do
    local queue, state = KEYS[k], KEYS[k + 1]
    for i = 1, #events, 500 do
      redis.call('LPUSH', queue, unpack(events, i, math.min(i + 499, #events)))
    end
    local over = redis.call('LLEN', queue) - bound
    if over > 0 then
      redis.call('LTRIM', queue, 0, bound - 1)  -- the oldest are at the tail
      redis.call('HINCRBY', state, 'dropped', over)
    else
      over = 0
    end
    redis.call('HINCRBY', state, 'enqueued', #events)
    dropped[#dropped + 1] = over
  end
  return dropped
end
"""

_ENQUEUE_LUA = (
    FEED_PUSH_LUA
    + """
-- ARGV[1]: bound; ARGV[2..]: events (JSON)
local events = {}
for i = 2, #ARGV do events[#events + 1] = ARGV[i] end
return feed_push(tonumber(ARGV[1]), events, 1)
"""
)

_HOLD_LUA = """
-- KEYS: lock, state; ARGV: owner, ttl_ms, now. Acquire the lock, or renew it when already ours.
local holder = redis.call('GET', KEYS[1])
if not holder then
  redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
  redis.call('HSET', KEYS[2], 'forwarder', ARGV[1], 'forwarder_since', ARGV[3])
  return 2
end
if holder == ARGV[1] then
  redis.call('PEXPIRE', KEYS[1], ARGV[2])
  return 1
end
return 0
"""

_TAKE_OVER_LUA = """
-- KEYS: lock, state; ARGV: owner, ttl_ms, now, dead holder. Replace a holder known to be dead.
if redis.call('GET', KEYS[1]) ~= ARGV[4] then return 0 end
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
redis.call('HSET', KEYS[2], 'forwarder', ARGV[1], 'forwarder_since', ARGV[3])
return 2
"""

_RELEASE_LUA = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
"""

_TAKE_LUA = """
-- KEYS: lock, queue, inflight; ARGV: owner, n. Returns nil when the lock is not ours.
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return false end
local held = redis.call('LRANGE', KEYS[3], 0, -1)
if #held > 0 then return held end
local items = redis.call('LRANGE', KEYS[2], -tonumber(ARGV[2]), -1)
if #items == 0 then return {} end
redis.call('LTRIM', KEYS[2], 0, -#items - 1)
for i = 1, #items, 500 do
  redis.call('RPUSH', KEYS[3], unpack(items, i, math.min(i + 499, #items)))
end
return items
"""

_ACK_LUA = """
-- KEYS: lock, inflight, state; ARGV: owner, delivered, discarded, now
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return 0 end
local n, discarded = tonumber(ARGV[2]), tonumber(ARGV[3])
redis.call('LTRIM', KEYS[2], 0, -n - 1)  -- the oldest are at the tail
redis.call('HINCRBY', KEYS[3], 'sent', n - discarded)
if discarded > 0 then redis.call('HINCRBY', KEYS[3], 'rejected', discarded) end
redis.call('HSET', KEYS[3], 'status', 'up', 'last_success', ARGV[4], 'failures', 0)
return 1
"""

_REJECT_LUA = """
-- KEYS: lock, inflight, state, rejected; ARGV: owner, entry (JSON), retain, reason, now
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return 0 end
redis.call('RPOP', KEYS[2])
local retain = tonumber(ARGV[3])
if retain > 0 then
  redis.call('LPUSH', KEYS[4], ARGV[2])
  redis.call('LTRIM', KEYS[4], 0, retain - 1)
end
redis.call('HINCRBY', KEYS[3], 'rejected', 1)
redis.call('HSET', KEYS[3], 'last_rejected', ARGV[4], 'last_rejected_at', ARGV[5])
return 1
"""


class FeedTarget:
    """Where new results go for the feed: the active destinations' queues and their bound."""

    def __init__(self, destinations: Sequence[str], bound: int) -> None:
        self.destinations = list(destinations)
        self.bound = bound
        self.keys = [
            key for d in self.destinations for key in (keys.superlog(d, "queue"), keys.superlog(d, "state"))
        ]

    @classmethod
    def from_settings(cls, superlog: SuperlogSettings) -> FeedTarget | None:
        """The target of ``DSXCONNECT_SUPERLOG__*``; None when no destination is active."""
        active = list(superlog.active)
        return cls(active, superlog.buffer_max_events) if active else None


class FeedProducer(FeedTarget):
    """Pushes events onto every active destination's buffer on its own, as the forwarder tests fill
    a buffer (the result step pushes inside its store call, ``ResultStore.feed``)."""

    def __init__(self, client: redis.Redis, destinations: Sequence[str], bound: int) -> None:
        super().__init__(destinations, bound)
        self._enqueue = client.register_script(_ENQUEUE_LUA)

    def enqueue(self, events: Sequence[str]) -> dict[str, int]:
        """Push ``events`` (JSON text) in one round trip; returns the events dropped per destination."""
        if not events or not self.destinations:
            return {}
        dropped = self._enqueue(keys=self.keys, args=[self.bound, *events])
        return dict(zip(self.destinations, (int(n) for n in dropped), strict=True))


class LockLost(Exception):
    """Another forwarder holds the destination now: stop working on this batch."""


class DestinationBuffer:
    """The forwarder's side of one destination's buffer."""

    def __init__(
        self, client: redis.Redis, destination: str, lock_ttl_s: float, rejected_retain: int
    ) -> None:
        self.redis = client
        self.destination = destination
        self.lock_ttl_ms = int(lock_ttl_s * 1000)
        self.rejected_retain = rejected_retain
        self.queue, self.inflight = (
            keys.superlog(destination, "queue"),
            keys.superlog(destination, "inflight"),
        )
        self.state, self.lock = keys.superlog(destination, "state"), keys.superlog(destination, "lock")
        self.rejected = keys.superlog(destination, "rejected")
        self._hold = client.register_script(_HOLD_LUA)
        self._take_over = client.register_script(_TAKE_OVER_LUA)
        self._release = client.register_script(_RELEASE_LUA)
        self._take = client.register_script(_TAKE_LUA)
        self._ack = client.register_script(_ACK_LUA)
        self._reject = client.register_script(_REJECT_LUA)

    def hold(self, owner: str) -> int:
        """Acquire or renew the lock: 2 acquired now, 1 renewed, 0 held by another forwarder."""
        return int(self._hold(keys=[self.lock, self.state], args=[owner, self.lock_ttl_ms, utcnow_iso()]))

    def holder(self) -> str | None:
        """The forwarder holding the lock, if any."""
        value = self.redis.get(self.lock)
        return str(value) if value is not None else None

    def take_over(self, owner: str, dead: str) -> bool:
        """Take the lock from ``dead``, a holder known to have exited (its lock not expired yet)."""
        args = [owner, self.lock_ttl_ms, utcnow_iso(), dead]
        return bool(self._take_over(keys=[self.lock, self.state], args=args))

    def release(self, owner: str) -> None:
        self._release(keys=[self.lock], args=[owner])

    def take(self, owner: str, n: int) -> list[str]:
        """The batch to send, oldest first: what ``inflight`` holds, else up to ``n`` moved from the queue."""
        items = self._take(keys=[self.lock, self.queue, self.inflight], args=[owner, n])
        if items is None:
            raise LockLost(self.destination)
        return list(reversed(items))

    def ack(self, owner: str, delivered: int, discarded: int = 0) -> None:
        """The ``delivered`` oldest events of the batch went through (``discarded`` of them the service dropped)."""
        done = self._ack(
            keys=[self.lock, self.inflight, self.state], args=[owner, delivered, discarded, utcnow_iso()]
        )
        if not done:
            raise LockLost(self.destination)

    def reject(self, owner: str, raw: str, reason: str) -> None:
        """Set aside the oldest event of the batch, which the receiver refused as such."""
        entry = json.dumps({"at": utcnow_iso(), "reason": reason[:500], "event": raw})
        done = self._reject(
            keys=[self.lock, self.inflight, self.state, self.rejected],
            args=[owner, entry, self.rejected_retain, reason[:500], utcnow_iso()],
        )
        if not done:
            raise LockLost(self.destination)

    def failed(self, error: str) -> None:
        """Record a failed delivery: the destination is down until the next success."""
        pipe = self.redis.pipeline(transaction=False)
        pipe.hset(
            self.state, mapping={"status": "down", "last_error": error[:500], "last_error_at": utcnow_iso()}
        )
        pipe.hincrby(self.state, "failures", 1)
        pipe.execute()


STATE_FIELDS = ("sent", "dropped", "rejected", "enqueued", "failures")


def destination_states(client: redis.Redis, destinations: Sequence[str]) -> dict[str, dict[str, Any]]:
    """Per destination: ``status`` (up, down, stalled, pending), backlog, counters, last success and error.

    ``stalled``: events wait and no forwarder holds the destination; ``pending``: nothing delivered yet.
    """
    if not destinations:
        return {}
    pipe = client.pipeline(transaction=False)
    for dest in destinations:
        pipe.hgetall(keys.superlog(dest, "state"))
        pipe.llen(keys.superlog(dest, "queue"))
        pipe.llen(keys.superlog(dest, "inflight"))
        pipe.get(keys.superlog(dest, "lock"))
    answers = pipe.execute()
    states: dict[str, dict[str, Any]] = {}
    for i, dest in enumerate(destinations):
        raw, queued, inflight, holder = answers[4 * i : 4 * i + 4]
        backlog = int(queued) + int(inflight)
        status = raw.get("status") or "pending"
        if status != "down" and backlog and not holder:
            status = "stalled"
        states[dest] = {
            "status": status,
            "backlog": backlog,
            "in_flight": int(inflight),
            **{name: int(raw.get(name, 0)) for name in STATE_FIELDS},
            "last_success": raw.get("last_success"),
            "last_error": raw.get("last_error"),
            "last_error_at": raw.get("last_error_at"),
            "last_rejected": raw.get("last_rejected"),
            "forwarder": holder,
        }
    return states
