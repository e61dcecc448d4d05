"""Connector credentials: enrollment, rotation, revocation (SPEC §8).

What is stored, and why no secret is:

- A connector's secret is *derived*, never stored: ``base64url(HMAC-SHA256(server_key,
  "dsx-connect/connector-secret/v1|" + key_id))``. Redis holds only key ids, the connector each
  belongs to, and the fingerprint of the server key they were derived under; a copy of Redis alone
  lets nobody sign. The server key is ``DSXCONNECT_AUTH__SERVER_KEY``; when it is unset, one is
  generated once and kept in Redis (then a copy of Redis *does* hold it: set the variable in
  production). Changing the server key invalidates every issued pair: each connector receives a new
  one at its next registration (within its 60 s heartbeat).
- ``auth:connector:{uuid}`` (hash): ``current`` key id, ``delivered`` (the current pair has been
  handed out in a registration answer), ``previous`` and ``previous_until`` (the pair replaced by a
  rotation, valid for ``DSXCONNECT_AUTH__KEY_ROTATION_GRACE_S``), ``revoked_at``.
- ``auth:key:{key_id}`` (hash): ``uuid``, ``sv`` (server-key fingerprint), ``created``; a previous
  key's record expires with its grace window, so an expired key is simply unknown.

Rotation without downtime: a new pair becomes current; the connector keeps signing with the old one
(still valid) until its next registration answer carries the new pair; the core signs its own calls
to the connector with the old pair until then (``delivered``), and with the new one afterwards.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
import time
from dataclasses import dataclass
from typing import Any

import redis

from dsx_connect import keys
from dsx_connect.auth.settings import AuthSettings
from shared.hmac_auth import Signer
from shared.redaction import register_secret

_SECRET_CONTEXT = b"dsx-connect/connector-secret/v1|"
_FINGERPRINT_CONTEXT = b"dsx-connect/server-key-fingerprint|"

# Enroll (or rotate) atomically. KEYS[1] = the connector's hash. ARGV: new key id, server-key
# fingerprint, now, rotate ("1"/"0"), grace seconds, key-record prefix, uuid, delivered ("1"/"0"),
# create_only ("1": refuse when the uuid already has an identity), name ("" keeps the stored one).
# Returns {status, key_id}: status "revoked", "exists" (create_only refused), "same" (current pair
# kept) or "new".
_ENROLL = """
if redis.call('HEXISTS', KEYS[1], 'revoked_at') == 1 then return {'revoked', ''} end
local new, fp, now, rotate, grace, prefix = ARGV[1], ARGV[2], ARGV[3], ARGV[4], tonumber(ARGV[5]), ARGV[6]
local uuid, delivered, create_only, name = ARGV[7], ARGV[8], ARGV[9], ARGV[10]
local cur = redis.call('HGET', KEYS[1], 'current')
if cur and create_only == '1' then return {'exists', ''} end
if name ~= '' then redis.call('HSET', KEYS[1], 'name', name) end
local valid = false
if cur then valid = redis.call('HGET', prefix .. cur, 'sv') == fp end
if valid and rotate ~= '1' then
  if delivered == '1' then redis.call('HSET', KEYS[1], 'delivered', '1') end
  return {'same', cur}
end
redis.call('HSET', prefix .. new, 'uuid', uuid, 'sv', fp, 'created', now)
local old = redis.call('HGET', KEYS[1], 'previous')
if cur and valid and old and redis.call('HGET', KEYS[1], 'delivered') ~= '1' then
  -- rotated again before the connector fetched cur: it still holds (and signs with) old, which
  -- stays the previous pair until its own deadline; cur was never handed out
  redis.call('DEL', prefix .. cur)
  redis.call('HSET', KEYS[1], 'current', new, 'current_at', now, 'delivered', delivered)
  return {'new', new}
end
if old then redis.call('DEL', prefix .. old) end
redis.call('HDEL', KEYS[1], 'previous', 'previous_until')
if cur and valid and grace > 0 then
  redis.call('EXPIRE', prefix .. cur, grace)
  redis.call('HSET', KEYS[1], 'previous', cur, 'previous_until', tostring(tonumber(now) + grace))
elseif cur then
  redis.call('DEL', prefix .. cur)
end
redis.call('HSET', KEYS[1], 'current', new, 'current_at', now, 'delivered', delivered)
return {'new', new}
"""

# Revoke: drop every key record of the connector and mark it. KEYS[1] = its hash; ARGV: prefix, now.
_REVOKE = """
for _, field in ipairs({'current', 'previous'}) do
  local kid = redis.call('HGET', KEYS[1], field)
  if kid then redis.call('DEL', ARGV[1] .. kid) end
end
redis.call('DEL', KEYS[1])
redis.call('HSET', KEYS[1], 'revoked_at', ARGV[2])
return 1
"""


class ConnectorRevoked(PermissionError):
    """The connector was revoked by an operator: it may not register until reinstated."""


class IdentityExists(PermissionError):
    """The uuid already has an identity, and the caller may only create new ones."""


@dataclass(frozen=True, slots=True)
class Identity:
    """What the core holds about one connector uuid's identity (never a secret)."""

    uuid: str
    name: str | None
    key_id: str | None
    revoked: bool


@dataclass(frozen=True, slots=True)
class IssuedKey:
    """A connector's key pair as handed out in a registration answer."""

    key_id: str
    secret: str
    new: bool
    #: how long the pair before this one stays valid here (0: none is); the connector keeps it no longer
    previous_valid_s: int = 0


@dataclass(frozen=True, slots=True)
class KeyRecord:
    """What the core knows about one key id (for verifying a request signed with it)."""

    key_id: str
    uuid: str
    secret: str


def fingerprint(server_key: bytes) -> str:
    return hashlib.sha256(_FINGERPRINT_CONTEXT + server_key).hexdigest()[:16]


def derive_secret(server_key: bytes, key_id: str) -> str:
    """The secret of ``key_id``: 43 characters of URL-safe base64."""
    digest = hmac.new(server_key, _SECRET_CONTEXT + key_id.encode(), hashlib.sha256).digest()
    return base64.urlsafe_b64encode(digest).decode("ascii").rstrip("=")


def new_key_id() -> str:
    return "dsxk-" + secrets.token_hex(12)


class ConnectorKeys:
    """The credential store (see the module docstring); one per process is enough."""

    def __init__(self, client: redis.Redis, settings: AuthSettings) -> None:
        self.redis = client
        self.settings = settings
        self._server_key: bytes | None = None
        self._enroll = client.register_script(_ENROLL)
        self._revoke = client.register_script(_REVOKE)

    # ---- the server key ----------------------------------------------------------------------

    @property
    def server_key(self) -> bytes:
        if self._server_key is None:
            if self.settings.server_key is not None:
                key = self.settings.server_key.get_secret_value()
            else:  # generated once per deployment, shared by every API replica and worker
                self.redis.set(keys.AUTH_SERVER_KEY, secrets.token_urlsafe(32), nx=True)
                key = str(self.redis.get(keys.AUTH_SERVER_KEY))
            register_secret(key)
            self._server_key = key.encode()
        return self._server_key

    @property
    def fingerprint(self) -> str:
        return fingerprint(self.server_key)

    def secret_for(self, key_id: str) -> str:
        secret = derive_secret(self.server_key, key_id)
        register_secret(secret)
        return secret

    # ---- enrollment and rotation -------------------------------------------------------------

    def identity(self, uuid: str) -> Identity | None:
        """The identity of ``uuid`` (a key was issued to it, or it is revoked); None when it has none."""
        current, name, revoked = self.redis.hmget(keys.auth_connector(uuid), "current", "name", "revoked_at")
        if current is None and revoked is None:
            return None
        return Identity(uuid, name, current, revoked is not None)

    def enroll(
        self, uuid: str, *, rotate: bool = False, name: str | None = None, create_only: bool = False
    ) -> IssuedKey:
        """The pair a registering connector receives: its current one (1.x: the same on every
        re-registration), a new one the first time or when ``rotate`` asks for it. With
        ``create_only``, a uuid that already has an identity raises :class:`IdentityExists` (checked
        atomically with the creation, so two first registrations cannot both receive the pair)."""
        status, key_id = self._run_enroll(
            uuid, rotate=rotate, delivered=True, name=name, create_only=create_only
        )
        until = self.redis.hget(keys.auth_connector(uuid), "previous_until")
        previous_valid_s = max(0, int(float(until) - time.time())) if until else 0
        return IssuedKey(
            key_id, self.secret_for(key_id), new=status == "new", previous_valid_s=previous_valid_s
        )

    def rotate(self, uuid: str) -> str:
        """Issue a new pair now (operator); the connector receives it with its next registration."""
        return self._run_enroll(uuid, rotate=True, delivered=False)[1]

    def reset(self, uuid: str) -> bool:
        """Forget the identity of ``uuid`` (operator): every key stops working at once, and the next
        registration with an enrollment token creates it anew. False when it had none."""
        existed = self.identity(uuid) is not None
        self._revoke(keys=[keys.auth_connector(uuid)], args=[keys.auth_key(""), f"{time.time():.3f}"])
        self.redis.delete(keys.auth_connector(uuid))
        return existed

    def _run_enroll(
        self,
        uuid: str,
        *,
        rotate: bool,
        delivered: bool,
        name: str | None = None,
        create_only: bool = False,
    ) -> tuple[str, str]:
        args = [
            new_key_id(), self.fingerprint, f"{time.time():.3f}", "1" if rotate else "0",
            self.settings.key_rotation_grace_s, keys.auth_key(""), uuid, "1" if delivered else "0",
            "1" if create_only else "0", name or "",
        ]  # fmt: skip
        status, key_id = self._enroll(keys=[keys.auth_connector(uuid)], args=args)
        if status == "revoked":
            raise ConnectorRevoked(f"connector {uuid} is revoked; an operator can reinstate it")
        if status == "exists":
            raise IdentityExists(uuid)
        return str(status), str(key_id)

    # ---- revocation --------------------------------------------------------------------------

    def revoke(self, uuid: str) -> None:
        """Invalidate every key of the connector at once and refuse its registrations."""
        self._revoke(keys=[keys.auth_connector(uuid)], args=[keys.auth_key(""), f"{time.time():.3f}"])

    def reinstate(self, uuid: str) -> bool:
        """Allow a revoked connector to register again (it then receives a new pair)."""
        return bool(self.redis.hdel(keys.auth_connector(uuid), "revoked_at"))

    def is_revoked(self, uuid: str) -> bool:
        return bool(self.redis.hexists(keys.auth_connector(uuid), "revoked_at"))

    # ---- lookups -----------------------------------------------------------------------------

    def lookup(self, key_id: str) -> KeyRecord | None:
        """The connector and secret of a valid key id; None when unknown, expired or revoked."""
        if not key_id.startswith("dsxk-") or len(key_id) > 64:
            return None
        record: dict[str, str] = self.redis.hgetall(keys.auth_key(key_id))
        if not record or record.get("sv") != self.fingerprint:
            return None
        return KeyRecord(key_id, record["uuid"], self.secret_for(key_id))

    def signing_key(self, uuid: str) -> tuple[str, str] | None:
        """The pair the core signs its calls to ``uuid`` with: the newest one the connector holds."""
        current, delivered, previous, until = self.redis.hmget(
            keys.auth_connector(uuid), "current", "delivered", "previous", "previous_until"
        )
        if current is None:
            return None
        use = current
        if delivered != "1" and previous and float(until or 0) > time.time():
            use = previous  # rotated by an operator; the connector has not fetched the new pair yet
        return use, self.secret_for(use)

    def signer(self, uuid: str) -> Signer | None:
        pair = self.signing_key(uuid)
        return Signer(*pair) if pair else None

    def describe(self, uuid: str) -> dict[str, Any]:
        """Key ids and dates of one connector (never a secret)."""
        data: dict[str, str] = self.redis.hgetall(keys.auth_connector(uuid))
        return {
            "uuid": uuid,
            "name": data.get("name"),
            "key_id": data.get("current"),
            "key_created": _float(data.get("current_at")),
            "key_delivered": data.get("delivered") == "1",
            "previous_key_id": data.get("previous"),
            "previous_valid_until": _float(data.get("previous_until")),
            "revoked": "revoked_at" in data,
            "revoked_at": _float(data.get("revoked_at")),
        }


def _float(value: str | None) -> float | None:
    return float(value) if value else None


def claim_nonce(client: redis.Redis, key_id: str, nonce: str, ttl_s: int) -> bool:
    """True the first time ``nonce`` is seen for ``key_id`` within ``ttl_s`` (a replay is False)."""
    return bool(client.set(keys.auth_nonce(key_id, nonce), "1", nx=True, ex=ttl_s))
