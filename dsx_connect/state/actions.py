"""The action claims: one record per scan request, claimed before a connector is asked to act.

``claim`` sets the record to a pending claim (``pending:<unix time>:<token>``) unless there is one; a
finished action replaces it with the recorded outcome (never asked again); a failed attempt whose
answer was seen releases it (a requeue may try again), only if the claim is still its own; one whose
answer was lost keeps it pending, so a later attempt that finds the item gone knows an earlier one
acted. A pending claim younger than an action can take is an attempt in progress (a second copy of
the item, requeued twice or redelivered, waits for it); an older one was cut off by a crash and is
taken over.
"""

from __future__ import annotations

import secrets
import time
from dataclasses import dataclass

import redis

from dsx_connect import keys
from shared.models import EventAction

ACTION_RECORD_TTL_S = 7 * 86400
PENDING = "pending"

# KEYS: the claim. ARGV: the value expected, the value to set (or '' to delete), ttl.
_SWAP_LUA = """
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return 0 end
if ARGV[2] == '' then redis.call('DEL', KEYS[1]) else redis.call('SET', KEYS[1], ARGV[2], 'EX', ARGV[3]) end
return 1
"""


def pending_since(recorded: str | None) -> float | None:
    """When a pending claim was taken (0 for the bare ``pending`` of older releases); None when
    ``recorded`` is no claim (nothing, or a finished action's outcome)."""
    if recorded is None or not recorded.startswith(PENDING):
        return None
    parts = recorded.split(":")
    try:
        return float(parts[1]) if len(parts) == 3 else 0.0
    except ValueError:
        return 0.0


def _token(attempt: str | None) -> str:
    return f"{PENDING}:{time.time():.3f}:{attempt or secrets.token_hex(6)}"


def claimed_by(recorded: str | None, attempt: str | None) -> bool:
    """Whether ``recorded`` is a pending claim of the delivery ``attempt`` (an earlier try of the
    same task: retried after a Redis error, or redelivered after its worker died)."""
    if recorded is None or attempt is None or pending_since(recorded) is None:
        return False
    return recorded.split(":", 2)[-1] == attempt


@dataclass(frozen=True)
class Claim:
    token: str | None  #: the pending claim this call holds (None: it holds none)
    recorded: str | None  #: what was there before: None, a pending claim, or an outcome's JSON


class ActionClaims:
    def __init__(self, client: redis.Redis, ttl_s: int = ACTION_RECORD_TTL_S) -> None:
        self.redis = client
        self.ttl_s = ttl_s
        self._swap = client.register_script(_SWAP_LUA)

    def claim(self, request_id: str, attempt: str | None = None) -> Claim:
        """Claim the action; ``attempt`` names the delivery (the task's id, kept by its own retries
        and redeliveries: :func:`claimed_by` tells its earlier claim from another copy's)."""
        token = _token(attempt)
        key = keys.action_done(request_id)
        if self.redis.set(key, token, nx=True, ex=self.ttl_s):
            return Claim(token, None)
        return Claim(None, self.redis.get(key))

    def take_over(self, request_id: str, stale: str, attempt: str | None = None) -> Claim:
        """Replace a pending claim an attempt cut off by a crash left (``stale``); holds none when
        another attempt took it over first."""
        token = _token(attempt)
        swapped = self._swap(keys=[keys.action_done(request_id)], args=[stale, token, self.ttl_s])
        return Claim(token if swapped else None, stale)

    def record(self, request_id: str, action: EventAction) -> None:
        self.redis.set(keys.action_done(request_id), action.model_dump_json(), ex=self.ttl_s)

    def release(self, request_id: str, token: str) -> None:
        """Delete the claim if it is still ``token`` (another attempt's claim is not ours to end)."""
        self._swap(keys=[keys.action_done(request_id)], args=[token, "", self.ttl_s])
