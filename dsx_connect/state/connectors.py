"""Registered connectors, kept in Redis and expired when their heartbeat stops (SPEC §5)."""

from __future__ import annotations

import json
import time

import redis
import redis.asyncio as aredis

from dsx_connect import keys
from shared.models import ConnectorInstance, RegisteredConnector, utcnow_iso


def put_state(client: redis.Redis, uuid: str, namespace: str, key: str, value: str) -> None:
    """Keep one value of a connector's state (a cursor such as a Graph delta token)."""
    client.hset(f"{keys.CONNECTOR_STATE}:{uuid}:{namespace}", key, value)


def get_state(client: redis.Redis, uuid: str, namespace: str, key: str) -> str | None:
    """One value of a connector's state, or None."""
    value: str | None = client.hget(f"{keys.CONNECTOR_STATE}:{uuid}:{namespace}", key)
    return value


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
