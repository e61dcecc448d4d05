"""Enrollment tokens (SPEC §8): fleet-wide ones from the settings, scoped ones minted by operators.

- A **fleet-wide** token (``DSXCONNECT_AUTH__ENROLLMENT_TOKENS``) creates new connector identities
  only: with it alone, a uuid that already has an identity answers 409 and nothing is revealed.
- A **scoped** token is bound to one connector name or one uuid, optionally expires, and lets that
  connector re-register and receive its pair as often as it likes (what a DSX-Connect 1.x connector
  does at every restart). Operators mint, list and revoke them (``/auth/enrollment-tokens``, the
  dashboard's Security panel, ``inv enrollment-token``). Only a SHA-256 of each token is stored; the
  token itself is shown once, in the answer that mints it.

Redis: ``dsxc:auth:etok:{id}`` (hash: ``sha256``, ``connector_name`` or ``connector_uuid``,
``label``, ``created``, ``expires_at``; it expires with the token), ``dsxc:auth:etok-by-hash``
(``sha256`` -> id) and ``dsxc:auth:etoks`` (the ids).
"""

from __future__ import annotations

import hashlib
import secrets
import time
from dataclasses import dataclass
from typing import Any, Literal

import redis

from dsx_connect import keys
from dsx_connect.auth.settings import AuthSettings
from dsx_connect.state.auth_operators import matches_any

TOKENS = keys.ENROLLMENT_TOKENS
BY_HASH = keys.ENROLLMENT_TOKEN_BY_HASH
TOKEN_PREFIX = "dsxe-"


token_key = keys.enrollment_token


def _sha256(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


@dataclass(frozen=True, slots=True)
class EnrollmentGrant:
    """What a presented enrollment token allows: a fleet-wide one, or one scoped to a connector."""

    kind: Literal["fleet", "scoped"]
    token_id: str | None = None
    connector_name: str | None = None
    connector_uuid: str | None = None

    @property
    def scoped(self) -> bool:
        return self.kind == "scoped"

    def covers(self, uuid: str, name: str | None) -> bool:
        """Whether this token speaks for the connector ``uuid`` whose identity is named ``name``."""
        if not self.scoped:
            return False
        if self.connector_uuid is not None:
            return self.connector_uuid == uuid
        return name is not None and self.connector_name == name


class EnrollmentTokens:
    """Checks presented tokens; mints, lists and revokes scoped ones."""

    def __init__(self, client: redis.Redis, settings: AuthSettings) -> None:
        self.redis = client
        self._fleet = [t.get_secret_value() for t in settings.enrollment_tokens]

    def check(self, token: str) -> EnrollmentGrant | None:
        """The grant of ``token``, or None when it is no valid token (unknown, expired, revoked)."""
        if not token or len(token) > 512:
            return None
        if matches_any(token, self._fleet):
            return EnrollmentGrant("fleet")
        if not token.startswith(TOKEN_PREFIX):
            return None
        token_id = self.redis.hget(BY_HASH, _sha256(token))
        if token_id is None:
            return None
        record: dict[str, str] = self.redis.hgetall(token_key(str(token_id)))
        expires = float(record.get("expires_at") or 0)
        if not record or (expires and expires <= time.time()):
            return None
        return EnrollmentGrant(
            "scoped",
            token_id=str(token_id),
            connector_name=record.get("connector_name") or None,
            connector_uuid=record.get("connector_uuid") or None,
        )

    def mint(
        self,
        *,
        connector_name: str | None = None,
        connector_uuid: str | None = None,
        expires_in_s: int | None = None,
        label: str | None = None,
    ) -> tuple[str, dict[str, Any]]:
        """A new token bound to exactly one of ``connector_name`` / ``connector_uuid``: (token, record)."""
        if (connector_name is None) == (connector_uuid is None):
            raise ValueError("a scoped token is bound to exactly one of connector_name or connector_uuid")
        token = TOKEN_PREFIX + secrets.token_urlsafe(32)
        token_id = "etok-" + secrets.token_hex(6)
        now = time.time()
        record = {
            "sha256": _sha256(token),
            "connector_name": connector_name or "",
            "connector_uuid": connector_uuid or "",
            "label": label or "",
            "created": f"{now:.3f}",
            "expires_at": f"{now + expires_in_s:.3f}" if expires_in_s else "",
        }
        pipe = self.redis.pipeline(transaction=True)
        pipe.hset(token_key(token_id), mapping=record)
        if expires_in_s:
            pipe.expire(token_key(token_id), expires_in_s)
        pipe.hset(BY_HASH, record["sha256"], token_id)
        pipe.sadd(TOKENS, token_id)
        pipe.execute()
        return token, self._describe(token_id, record)

    def list(self) -> list[dict[str, Any]]:
        """Every scoped token still valid (never the token itself); expired ones are dropped."""
        found: list[dict[str, Any]] = []
        for token_id in sorted(self.redis.smembers(TOKENS)):
            record: dict[str, str] = self.redis.hgetall(token_key(token_id))
            expires = float(record.get("expires_at") or 0)
            if not record or (expires and expires <= time.time()):
                self._forget(token_id, record.get("sha256"))
                continue
            found.append(self._describe(token_id, record))
        return found

    def revoke(self, token_id: str) -> bool:
        """Revoke a scoped token at once; False when there is no such token."""
        record: dict[str, str] = self.redis.hgetall(token_key(token_id))
        if not record:
            return bool(self.redis.srem(TOKENS, token_id))
        self._forget(token_id, record.get("sha256"))
        return True

    def _forget(self, token_id: str, sha: str | None) -> None:
        pipe = self.redis.pipeline(transaction=True)
        pipe.delete(token_key(token_id))
        if sha:
            pipe.hdel(BY_HASH, sha)
        pipe.srem(TOKENS, token_id)
        pipe.execute()

    @staticmethod
    def _describe(token_id: str, record: dict[str, str]) -> dict[str, Any]:
        return {
            "id": token_id,
            "connector_name": record.get("connector_name") or None,
            "connector_uuid": record.get("connector_uuid") or None,
            "label": record.get("label") or None,
            "created": float(record["created"]) if record.get("created") else None,
            "expires_at": float(record["expires_at"]) if record.get("expires_at") else None,
        }
