"""The action claims: one record per scan request, claimed before a connector is asked to act.

``claim`` sets the record to ``pending`` unless there is one; a finished action replaces it with the
recorded outcome (never asked again); a failed attempt whose answer was seen releases it (a requeue
may try again); one whose answer was lost keeps it pending, so a later attempt that finds the item
gone knows an earlier one acted.
"""

from __future__ import annotations

import redis

from dsx_connect import keys
from shared.models import EventAction

ACTION_RECORD_TTL_S = 7 * 86400
PENDING = "pending"


class ActionClaims:
    def __init__(self, client: redis.Redis, ttl_s: int = ACTION_RECORD_TTL_S) -> None:
        self.redis = client
        self.ttl_s = ttl_s

    def claim(self, request_id: str) -> tuple[bool, str | None]:
        """(claimed now, what was recorded before: None, ``PENDING`` or an outcome's JSON)."""
        key = keys.action_done(request_id)
        if self.redis.set(key, PENDING, nx=True, ex=self.ttl_s):
            return True, None
        return False, self.redis.get(key)

    def record(self, request_id: str, action: EventAction) -> None:
        self.redis.set(keys.action_done(request_id), action.model_dump_json(), ex=self.ttl_s)

    def release(self, request_id: str) -> None:
        self.redis.delete(keys.action_done(request_id))
