"""The scheduler as the API's lifespan runs it: started scans go through the full-scan route's code."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import redis

from dsx_connect.api.deps import get_connector_http  # the routes' pooled, address-guarded client
from dsx_connect.auth.deps import signed_calls_auth
from dsx_connect.connector_client import ConnectorClient
from dsx_connect.connectors.full_scan import FullScanFailed, start_full_scan
from dsx_connect.redis_client import replicated
from dsx_connect.schedules.identity import ScannerIdentity
from dsx_connect.schedules.scheduler import ScanNotStarted, Scheduler, run_scheduler
from dsx_connect.settings import Settings
from dsx_connect.state.auth_credentials import ConnectorKeys
from dsx_connect.state.connectors import ConnectorRegistry
from dsx_connect.state.jobs import JobStore
from dsx_connect.state.schedule_lease import LeaderLease
from dsx_connect.state.schedules import ScheduleStore


class FullScanStarter:
    """Starts a connector's full scan as ``POST /connectors/full_scan/{uuid}`` does, with a trigger."""

    def __init__(self, settings: Settings, client: redis.Redis) -> None:
        self.settings = settings
        self.registry = ConnectorRegistry(client, settings.connectors.heartbeat_ttl_s)
        self.jobs = JobStore(client, settings.jobs.retain_s)
        self.credentials = ConnectorKeys(client, settings.auth)
        self.http = get_connector_http(settings)

    def __call__(self, connector_uuid: str, trigger: str) -> str:
        connector = self.registry.get(connector_uuid)
        if connector is None:
            raise ScanNotStarted(f"connector {connector_uuid} is not registered (or its heartbeat expired)")
        try:
            calls = ConnectorClient(
                self.http, connector.url, signed_calls_auth(self.credentials, connector_uuid)
            )
            return start_full_scan(connector, self.jobs, calls, self.settings, trigger=trigger).job_id
        except FullScanFailed as exc:
            raise ScanNotStarted(str(exc)) from None


def build_scheduler(settings: Settings, client: redis.Redis) -> Scheduler:
    """The scheduler of this API process, from ``DSXCONNECT_SCHEDULER__*``."""
    config = settings.scheduler
    return Scheduler(
        ScheduleStore(client, config.claim_ttl_s),
        LeaderLease(client, config.lease_ttl_s),
        FullScanStarter(settings, client),
        identity=ScannerIdentity(settings.scanner, url=settings.scan_cache.version_url),
        scanner_poll_s=config.scanner_poll_s,
        durable=lambda: replicated(client, settings.redis_wait_replicas, settings.redis_wait_timeout_ms),
    )


@asynccontextmanager
async def scheduled_scans(settings: Settings, client: redis.Redis) -> AsyncIterator[Scheduler | None]:
    """Run this replica's scheduler while the block runs (nothing with the scheduler disabled)."""
    if not settings.scheduler.enabled:
        yield None
        return
    scheduler = build_scheduler(settings, client)
    async with run_scheduler(scheduler, settings.scheduler.poll_s):
        yield scheduler
