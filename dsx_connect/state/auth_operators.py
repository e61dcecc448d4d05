"""Operator credentials: API keys (``X-API-Key`` or ``Authorization: Bearer``) and login sessions.

A session is what ``POST /auth/login`` sets in an HttpOnly, SameSite=Strict cookie: 32 random
bytes, kept in Redis under the SHA-256 of the cookie value with the fingerprint of the API key that
opened it, so removing that key from ``DSXCONNECT_AUTH__API_KEYS`` ends its sessions too.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets

import redis

from dsx_connect import keys
from dsx_connect.auth.settings import AuthSettings

SESSION_COOKIE = "dsx_session"


def _digest(value: str) -> bytes:
    return hashlib.sha256(value.encode("utf-8")).digest()


def key_fingerprint(key: str) -> str:
    return hashlib.sha256(b"dsx-connect/operator-key|" + key.encode("utf-8")).hexdigest()[:24]


def matches_any(candidate: str, allowed: list[str]) -> bool:
    """Constant-time membership: compares digests, so neither the length nor a prefix leaks."""
    given = _digest(candidate)
    found = False
    for value in allowed:
        found |= hmac.compare_digest(given, _digest(value))
    return found


class OperatorAuth:
    """Checks API keys and sessions against the settings and Redis."""

    def __init__(self, client: redis.Redis, settings: AuthSettings) -> None:
        self.redis = client
        self.settings = settings
        self._keys = [k.get_secret_value() for k in settings.api_keys]
        self._fingerprints = {key_fingerprint(k) for k in self._keys}

    def api_key_ok(self, key: str) -> bool:
        return bool(key) and matches_any(key, self._keys)

    def open_session(self, api_key: str) -> str:
        """A new session for a valid key; returns the cookie value."""
        session = secrets.token_urlsafe(32)
        self.redis.set(
            keys.auth_session(hashlib.sha256(session.encode()).hexdigest()),
            key_fingerprint(api_key),
            ex=self.settings.session_ttl_s,
        )
        return session

    def session_ok(self, session: str) -> bool:
        if not session or len(session) > 128:
            return False
        fingerprint = self.redis.get(keys.auth_session(hashlib.sha256(session.encode()).hexdigest()))
        return fingerprint is not None and fingerprint in self._fingerprints

    def close_session(self, session: str) -> None:
        if session and len(session) <= 128:
            self.redis.delete(keys.auth_session(hashlib.sha256(session.encode()).hexdigest()))
