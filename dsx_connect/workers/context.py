"""Per-process resources of a worker: settings, stores, clients, and a short connector cache."""

from __future__ import annotations

import os
import time
from dataclasses import dataclass, field
from functools import lru_cache

import httpx
import redis

from dsx_connect.auth.signing import SignerCache
from dsx_connect.auth.urls import AddressPolicy, guarded_transport
from dsx_connect.redis_client import get_redis
from dsx_connect.results.readers import redis_store
from dsx_connect.settings import Settings, get_settings
from dsx_connect.state.auth_credentials import ConnectorKeys
from dsx_connect.state.breaker import ScannerBreaker
from dsx_connect.state.connectors import ConnectorRegistry
from dsx_connect.state.dead_letters import DeadLetterStore
from dsx_connect.state.feed import FeedTarget
from dsx_connect.state.jobs import JobStore
from dsx_connect.state.results import ResultStore
from dsx_connect.workers.hot_path import ScanConfig
from shared.backoff import equal_jitter
from shared.hmac_auth import DsxHmacAuth, Signer
from shared.models import RegisteredConnector
from shared.tls import client_ssl

CONNECTOR_CACHE_S = 5.0


@dataclass
class WorkerContext:
    settings: Settings
    registry: ConnectorRegistry
    jobs: JobStore
    results: ResultStore
    http: httpx.Client
    scan_config: ScanConfig
    breaker: ScannerBreaker
    dead_letters: DeadLetterStore
    client: redis.Redis  # the Redis client the stores share, handed to state-layer calls
    _connectors: dict[str, tuple[float, RegisteredConnector | None]] = field(default_factory=dict)
    signers: SignerCache | None = None  # DSX-HMAC for calls to connectors; None with auth off

    def connector(self, uuid: str) -> RegisteredConnector | None:
        """The registered connector for ``uuid``: the only source of URLs workers call (SPEC §8)."""
        now = time.monotonic()
        cached = self._connectors.get(uuid)
        if cached and now - cached[0] < CONNECTOR_CACHE_S:
            return cached[1]
        record = self.registry.get(uuid)
        self._connectors[uuid] = (now, record)
        return record

    def signer(self, uuid: str) -> Signer | None:
        """Signs this worker's calls to the connector ``uuid`` (SPEC §8), with the pair it holds."""
        return self.signers.get(uuid) if self.signers is not None else None

    def signature_refused(self, uuid: str) -> None:
        """A connector answered 401: its pair may have changed (rotation, re-enrollment); re-read it."""
        if self.signers is not None:
            self.signers.forget(uuid)

    def connector_auth(self, uuid: str) -> DsxHmacAuth | None:
        signer = self.signer(uuid)
        return DsxHmacAuth(signer) if signer is not None else None

    def backoff(self, attempt: int) -> float:
        """Capped exponential backoff with jitter for retry number ``attempt`` (1-based)."""
        workers = self.settings.workers
        return equal_jitter(attempt, workers.retry_backoff_s, workers.retry_backoff_max_s)


def result_store(settings: Settings, client: redis.Redis) -> ResultStore:
    """The result step's store: bounded by the results settings, filling the SIEM feed's queues."""
    return redis_store(settings.results_db, client, feed=FeedTarget.from_settings(settings.superlog))


@lru_cache
def _context(pid: int) -> WorkerContext:
    settings = get_settings()
    client = get_redis()
    connector_ssl = client_ssl(settings.connectors.verify_tls, settings.connectors.ca_bundle)
    scanner = settings.scanner
    return WorkerContext(
        settings=settings,
        registry=ConnectorRegistry(client, settings.connectors.heartbeat_ttl_s),
        jobs=JobStore(client, settings.jobs.retain_s),
        results=result_store(settings, client),
        http=httpx.Client(
            timeout=httpx.Timeout(settings.workers.connector_timeout_s, connect=scanner.connect_timeout_s),
            transport=guarded_transport(  # connects only where auth.urls allows (SSRF)
                AddressPolicy.from_settings(settings.connectors),
                limits=httpx.Limits(max_connections=32, max_keepalive_connections=16),
                verify=connector_ssl,
            ),
        ),
        scan_config=ScanConfig.from_settings(settings),
        breaker=ScannerBreaker(
            client,
            settings.workers.breaker_threshold,
            settings.workers.breaker_open_s,
            settings.workers.breaker_open_max_s,
            probe_ttl_s=settings.workers.item_deadline_s + 5,
        ),
        dead_letters=DeadLetterStore(client, settings.dlq.retain_s),
        signers=SignerCache(ConnectorKeys(client, settings.auth)) if settings.auth.enabled else None,
        client=client,
    )


def worker_context() -> WorkerContext:
    return _context(os.getpid())
