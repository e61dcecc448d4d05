"""The feed's buffers in Redis: one bounded Redis Stream per destination, read by a consumer group.

Producer (the result step): the Lua call that stores a batch of results also appends each newly
stored event's JSON to the stream of every active destination (``XADD``) and trims each stream to
``buffer_max_events``, counting what the trim dropped (the oldest) in the destination's ``dropped``
counter (``FEED_PUSH_LUA``, used by ``dsx_connect.state.results``). Stored and queued for the feed in
one atomic step: a worker dying in between cannot leave a result out of the feed.

Forwarder (one per destination at a time, elected by a lock with a TTL, so events leave in order):
``take`` claims the group's pending entries (``XAUTOCLAIM``: a batch a crashed forwarder, or our own
last failed attempt, left behind) or, when none are pending, reads new ones (``XREADGROUP``);
``ack`` acknowledges and deletes the delivered ones, oldest first (``XACK`` + ``XDEL``, so the
stream's length is the backlog), ``reject`` sets aside one the receiver refused. Every call checks,
in the same script, that the caller still holds the lock, so a forwarder that lost it cannot
acknowledge its successor's work. Events are re-sent only after a crash or a lost lock
(at-least-once), never in normal operation. Buffers of the list-based releases (``queue`` and
``inflight`` lists) are moved into the stream when a forwarder first takes the lock.
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
-- KEYS[first..]: stream and state of each feed destination, in pairs. Appends ``events`` (JSON) to
-- every stream, trims each to ``bound`` (the oldest go) and returns what was dropped per destination.
local function feed_push(bound, events, first)
  local dropped = {}
  if #events == 0 then return dropped end
  for k = first, #KEYS, 2 do
    local stream, state = KEYS[k], KEYS[k + 1]
    for i = 1, #events do
      redis.call('XADD', stream, '*', 'e', events[i])
    end
    local over = redis.call('XLEN', stream) - bound
    if over > 0 then
      redis.call('XTRIM', stream, 'MAXLEN', bound)  -- the oldest go
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

GROUP = "forwarders"  # the consumer group of every destination's stream

_ENSURE_GROUP_LUA = (
    """
-- KEYS: stream, old inflight list, old queue list. Creates the consumer group (reading from the
-- start) and moves a list-based buffer (an earlier release's) into the stream, oldest first.
local function ensure_group(stream, inflight, queue)
  local moved = 0
  for _, item in ipairs(redis.call('LRANGE', inflight, 0, -1)) do  -- oldest first (RPUSHed)
    redis.call('XADD', stream, '*', 'e', item); moved = moved + 1
  end
  local queued = redis.call('LRANGE', queue, 0, -1)  -- newest first (LPUSHed)
  for i = #queued, 1, -1 do
    redis.call('XADD', stream, '*', 'e', queued[i]); moved = moved + 1
  end
  if moved > 0 then redis.call('DEL', inflight, queue) end
  local ok = pcall(redis.call, 'XGROUP', 'CREATE', stream, '"""
    + GROUP
    + """', '0', 'MKSTREAM')
  return moved
end
"""
)

_HOLD_LUA = (
    _ENSURE_GROUP_LUA
    + """
-- KEYS: lock, state, stream, old inflight, old queue; ARGV: owner, ttl_ms, now. Acquire the lock (and
-- make sure the group exists), or renew it when already ours.
local holder = redis.call('GET', KEYS[1])
if not holder then
  redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
  redis.call('HSET', KEYS[2], 'forwarder', ARGV[1], 'forwarder_since', ARGV[3])
  ensure_group(KEYS[3], KEYS[4], KEYS[5])
  return 2
end
if holder == ARGV[1] then
  redis.call('PEXPIRE', KEYS[1], ARGV[2])
  return 1
end
return 0
"""
)

_TAKE_OVER_LUA = (
    _ENSURE_GROUP_LUA
    + """
-- KEYS: lock, state, stream, old inflight, old queue; ARGV: owner, ttl_ms, now, dead holder.
-- Replace a holder known to be dead.
if redis.call('GET', KEYS[1]) ~= ARGV[4] then return 0 end
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
redis.call('HSET', KEYS[2], 'forwarder', ARGV[1], 'forwarder_since', ARGV[3])
ensure_group(KEYS[3], KEYS[4], KEYS[5])
return 2
"""
)

_RELEASE_LUA = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
"""

_TAKE_LUA = """
-- KEYS: lock, stream; ARGV: owner, n, group. Returns nil when the lock is not ours, else the events
-- of the batch, oldest first: the group's pending entries (whoever read them), else new ones.
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return false end
local function events(entries)
  local out = {}
  for _, entry in ipairs(entries) do
    local fields = entry[2]
    if fields then out[#out + 1] = fields[2] end  -- (an entry trimmed while pending has none)
  end
  return out
end
local claimed = redis.call('XAUTOCLAIM', KEYS[2], ARGV[3], ARGV[1], 0, '0-0', 'COUNT', ARGV[2])
if #claimed[2] > 0 then return events(claimed[2]) end
local read = redis.call('XREADGROUP', 'GROUP', ARGV[3], ARGV[1], 'COUNT', ARGV[2], 'STREAMS', KEYS[2], '>')
if not read then return {} end
return events(read[1][2])
"""

_SETTLE_OLDEST_LUA = """
-- The ``n`` oldest pending entries of ``owner``: acknowledged and deleted; returns how many.
local function settle_oldest(stream, group, owner, n)
  if n <= 0 then return 0 end
  local pending = redis.call('XPENDING', stream, group, '-', '+', n, owner)
  if #pending == 0 then return 0 end
  local ids = {}
  for i, p in ipairs(pending) do ids[i] = p[1] end
  redis.call('XACK', stream, group, unpack(ids))
  redis.call('XDEL', stream, unpack(ids))
  return #ids
end
"""

_ACK_LUA = (
    _SETTLE_OLDEST_LUA
    + """
-- KEYS: lock, stream, state; ARGV: owner, delivered, discarded, now, group
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return 0 end
local n, discarded = tonumber(ARGV[2]), tonumber(ARGV[3])
settle_oldest(KEYS[2], ARGV[5], ARGV[1], n)
redis.call('HINCRBY', KEYS[3], 'sent', n - discarded)
if discarded > 0 then redis.call('HINCRBY', KEYS[3], 'rejected', discarded) end
redis.call('HSET', KEYS[3], 'status', 'up', 'last_success', ARGV[4], 'failures', 0)
return 1
"""
)

_REJECT_LUA = (
    _SETTLE_OLDEST_LUA
    + """
-- KEYS: lock, stream, state, rejected; ARGV: owner, entry (JSON), retain, reason, now, group
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return 0 end
settle_oldest(KEYS[2], ARGV[6], ARGV[1], 1)
local retain = tonumber(ARGV[3])
if retain > 0 then
  redis.call('LPUSH', KEYS[4], ARGV[2])
  redis.call('LTRIM', KEYS[4], 0, retain - 1)
end
redis.call('HINCRBY', KEYS[3], 'rejected', 1)
redis.call('HSET', KEYS[3], 'last_rejected', ARGV[4], 'last_rejected_at', ARGV[5])
return 1
"""
)


class FeedTarget:
    """Where new results go for the feed: the active destinations' queues and their bound."""

    def __init__(self, destinations: Sequence[str], bound: int) -> None:
        self.destinations = list(destinations)
        self.bound = bound
        self.keys = [
            key for d in self.destinations for key in (keys.superlog(d, "stream"), keys.superlog(d, "state"))
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
        self.stream = keys.superlog(destination, "stream")
        # the list-based buffer of earlier releases, moved into the stream on the first hold
        self.old_lists = [keys.superlog(destination, "inflight"), keys.superlog(destination, "queue")]
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
        held = self._hold(
            keys=[self.lock, self.state, self.stream, *self.old_lists],
            args=[owner, self.lock_ttl_ms, utcnow_iso()],
        )
        return int(held)

    def holder(self) -> str | None:
        """The forwarder holding the lock, if any."""
        value = self.redis.get(self.lock)
        return str(value) if value is not None else None

    def take_over(self, owner: str, dead: str) -> bool:
        """Take the lock from ``dead``, a holder known to have exited (its lock not expired yet)."""
        args = [owner, self.lock_ttl_ms, utcnow_iso(), dead]
        return bool(self._take_over(keys=[self.lock, self.state, self.stream, *self.old_lists], args=args))

    def release(self, owner: str) -> None:
        self._release(keys=[self.lock], args=[owner])

    def take(self, owner: str, n: int) -> list[str]:
        """The batch to send, oldest first: what ``inflight`` holds, else up to ``n`` moved from the queue."""
        items = self._take(keys=[self.lock, self.stream], args=[owner, n, GROUP])
        if items is None:
            raise LockLost(self.destination)
        return list(items)

    def ack(self, owner: str, delivered: int, discarded: int = 0) -> None:
        """The ``delivered`` oldest events of the batch went through (``discarded`` of them the service dropped)."""
        done = self._ack(
            keys=[self.lock, self.stream, self.state], args=[owner, delivered, discarded, utcnow_iso(), GROUP]
        )
        if not done:
            raise LockLost(self.destination)

    def reject(self, owner: str, raw: str, reason: str) -> None:
        """Set aside the oldest event of the batch, which the receiver refused as such."""
        entry = json.dumps({"at": utcnow_iso(), "reason": reason[:500], "event": raw})
        done = self._reject(
            keys=[self.lock, self.stream, self.state, self.rejected],
            args=[owner, entry, self.rejected_retain, reason[:500], utcnow_iso(), GROUP],
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
        pipe.xlen(keys.superlog(dest, "stream"))
        pipe.xpending(keys.superlog(dest, "stream"), GROUP)
        pipe.get(keys.superlog(dest, "lock"))
        pipe.llen(keys.superlog(dest, "queue"))  # an earlier release's buffer, not moved yet
    answers = pipe.execute(raise_on_error=False)
    states: dict[str, dict[str, Any]] = {}
    for i, dest in enumerate(destinations):
        raw, streamed, pending, holder, old = answers[5 * i : 5 * i + 5]
        for answer in (raw, streamed, holder, old):
            if isinstance(answer, Exception):
                raise answer
        # no group yet (no forwarder ever held the destination): nothing is in flight
        inflight = 0 if isinstance(pending, Exception) else int(pending["pending"])
        backlog = int(streamed) + int(old)
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
