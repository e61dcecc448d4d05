"""Registered connectors, kept in Redis and expired when their heartbeat stops (SPEC §5)."""

from __future__ import annotations

import json
import re
import time

import redis
import redis.asyncio as aredis

from dsx_connect import keys
from dsx_connect.state.scripts import lua
from shared.models import CONNECTOR_UUID_PATTERN, ConnectorInstance, RegisteredConnector, utcnow_iso

#: the bounds of one connector's state (every namespace together): Redis runs without eviction, so
#: one connector writing without end would stop the whole core. A cursor or two per source is what
#: connectors keep; these leave room for far more.
MAX_STATE_KEYS = 1000
MAX_STATE_TOTAL_BYTES = 8 * 1024 * 1024

_PUT_LUA = lua("connector_state_put")  # dsx_connect/state/lua/connector_state_put.lua
_UUID = re.compile(CONNECTOR_UUID_PATTERN)


class StateBoundExceeded(Exception):
    """A write past a bound of the connector's state; ``bound`` is ``keys`` or ``bytes``."""

    def __init__(self, bound: str, held: int, limit: int) -> None:
        what = "keys" if bound == "keys" else "bytes (names and values)"
        super().__init__(
            f"the connector's state holds {held} {what}, at most {limit}: overwrite or reuse keys"
        )
        self.bound, self.held, self.limit = bound, held, limit


def _state_key(uuid: str, namespace: str) -> str:
    if not _UUID.fullmatch(uuid):  # a ":" in it would address another connector's namespace
        raise ValueError(f"connector uuid {uuid[:64]!r} is not 1-64 letters, digits, '.', '_' or '-'")
    return keys.connector_state(uuid, namespace)


def put_state(
    client: redis.Redis,
    uuid: str,
    namespace: str,
    key: str,
    value: str,
    *,
    max_keys: int = MAX_STATE_KEYS,
    max_bytes: int = MAX_STATE_TOTAL_BYTES,
) -> None:
    """Keep one value of a connector's state (a cursor such as a Graph delta token); atomically
    refused (:class:`StateBoundExceeded`) past ``max_keys`` keys or ``max_bytes`` bytes of the
    connector's state, every namespace together."""
    answer = client.register_script(_PUT_LUA)(
        keys=[
            _state_key(uuid, namespace),
            keys.connector_state_usage(uuid),
            keys.connector_state_namespaces(uuid),
        ],
        args=[namespace, key, value, max_keys, max_bytes],
    )
    if answer and answer[0] == "!keys":
        raise StateBoundExceeded("keys", int(answer[1]), max_keys)
    if answer and answer[0] == "!bytes":
        raise StateBoundExceeded("bytes", int(answer[1]), max_bytes)


def get_state(client: redis.Redis, uuid: str, namespace: str, key: str) -> str | None:
    """One value of a connector's state, or None."""
    value: str | None = client.hget(_state_key(uuid, namespace), key)
    return value


def delete_state(client: redis.Redis, uuid: str) -> int:
    """Forget every value of a connector's state (its identity was reset or revoked); returns how
    many namespaces went. Namespaces written before their connector's usage was kept are found by
    their key names (a scan: an operator's rare action), for a uuid that can be told from others."""
    namespaces = set(client.smembers(keys.connector_state_namespaces(uuid)))
    found = [keys.connector_state(uuid, namespace) for namespace in namespaces]
    if _UUID.fullmatch(uuid):  # no glob character, and no ":" (that would match another's keys)
        found += client.scan_iter(match=keys.connector_state(uuid, "*"), count=1000)
    unique = set(found)
    client.delete(*unique, keys.connector_state_usage(uuid), keys.connector_state_namespaces(uuid))
    return len(unique)


class ConnectorRegistry:
    def __init__(self, client: redis.Redis, ttl_s: int) -> None:
        self.redis = client
        self.ttl_s = ttl_s

    def register(self, connector: ConnectorInstance) -> tuple[RegisteredConnector, bool]:
        """Store or refresh a registration; returns it and whether it is new."""
        now = time.time()
        previous = self.get(connector.uuid, include_expired=True)
        record = RegisteredConnector(
            **connector.model_dump(),
            registered_at=previous.registered_at if previous else utcnow_iso(),
            last_heartbeat=utcnow_iso(),
            last_heartbeat_ts=now,
        )
        self.redis.hset(keys.CONNECTORS, connector.uuid, record.model_dump_json())
        created = previous is None or self._expired(previous, now)
        if created:
            self.redis.publish(
                keys.CHANNEL_CONNECTORS,
                json.dumps({"event": "registered", "connector": record.model_dump(mode="json")}),
            )
        return record, created

    def unregister(self, uuid: str) -> RegisteredConnector | None:
        record = self.get(uuid, include_expired=True)
        if record is None:
            return None
        self.redis.hdel(keys.CONNECTORS, uuid)
        self.redis.publish(
            keys.CHANNEL_CONNECTORS,
            json.dumps({"event": "unregistered", "connector": record.model_dump(mode="json")}),
        )
        return record

    def get(self, uuid: str, include_expired: bool = False) -> RegisteredConnector | None:
        raw = self.redis.hget(keys.CONNECTORS, uuid)
        if raw is None:
            return None
        record = RegisteredConnector.model_validate_json(raw)
        if not include_expired and self._expired(record, time.time()):
            return None
        return record

    def list(self) -> list[RegisteredConnector]:
        """Live connectors; expired registrations are removed on the way."""
        now = time.time()
        live: list[RegisteredConnector] = []
        for uuid, raw in self.redis.hgetall(keys.CONNECTORS).items():
            record = RegisteredConnector.model_validate_json(raw)
            if self._expired(record, now):
                self.redis.hdel(keys.CONNECTORS, uuid)
                self.redis.publish(
                    keys.CHANNEL_CONNECTORS,
                    json.dumps({"event": "expired", "connector": record.model_dump(mode="json")}),
                )
            else:
                live.append(record)
        return sorted(live, key=lambda c: (c.name, c.uuid))

    def _expired(self, record: RegisteredConnector, now: float) -> bool:
        return now - record.last_heartbeat_ts > self.ttl_s


async def async_connector_records(client: aredis.Redis) -> list[RegisteredConnector]:
    """Every stored registration, expired ones too (the caller filters by heartbeat)."""
    return [
        RegisteredConnector.model_validate_json(raw)
        for raw in (await client.hgetall(keys.CONNECTORS)).values()
    ]
