"""Dependencies of the API routes, as ``Annotated`` aliases (needs go in the signature)."""

from __future__ import annotations

from functools import lru_cache
from typing import Annotated, Any

import httpx
import redis
from fastapi import Depends, HTTPException, Path

from dsx_connect.auth.urls import AddressPolicy, guarded_transport
from dsx_connect.queues import ACTION_TASK, RESULT_TASK, SCAN_TASK, shown
from dsx_connect.redis_client import get_redis
from dsx_connect.results.history import SqlHistory
from dsx_connect.results.readers import reader_for, redis_store
from dsx_connect.results.recorder import history_for
from dsx_connect.results.search import ResultsReader
from dsx_connect.settings import Settings, get_settings
from dsx_connect.state.connectors import ConnectorRegistry
from dsx_connect.state.jobs import JobStore
from dsx_connect.state.results import ResultStore
from shared.models import RegisteredConnector
from shared.tls import client_ssl

SettingsDep = Annotated[Settings, Depends(get_settings)]
RedisDep = Annotated[redis.Redis, Depends(get_redis)]


def get_registry(settings: SettingsDep, client: RedisDep) -> ConnectorRegistry:
    return ConnectorRegistry(client, settings.connectors.heartbeat_ttl_s)


def get_jobs(settings: SettingsDep, client: RedisDep) -> JobStore:
    return JobStore(client, settings.jobs.retain_s)


def get_results(settings: SettingsDep, client: RedisDep) -> ResultStore:
    return redis_store(settings.results_db, client)


def get_history(settings: SettingsDep) -> SqlHistory | None:
    """The SQL results history, when ``DSXCONNECT_RESULTS_DB`` names one."""
    config = settings.results_db
    return history_for(config.sql_url) if config.durable else None


def get_reader(settings: SettingsDep, client: RedisDep) -> ResultsReader:
    """What searches read: the SQL history, else the bounded Redis store (``redis``, ``memory``)."""
    return reader_for(settings.results_db, client)


RegistryDep = Annotated[ConnectorRegistry, Depends(get_registry)]
HistoryDep = Annotated[SqlHistory | None, Depends(get_history)]
ReaderDep = Annotated[ResultsReader, Depends(get_reader)]
JobsDep = Annotated[JobStore, Depends(get_jobs)]
ResultsDep = Annotated[ResultStore, Depends(get_results)]


def known_connector(registry: RegistryDep, uuid: Annotated[str, Path(max_length=64)]) -> RegisteredConnector:
    connector = registry.get(uuid)
    if connector is None:
        raise HTTPException(404, f"connector {uuid} is not registered (or its heartbeat expired)")
    return connector


KnownConnector = Annotated[RegisteredConnector, Depends(known_connector)]


@lru_cache
def _connector_http(
    verify: bool, ca_bundle: str | None, timeout_s: float, policy: AddressPolicy
) -> httpx.Client:
    return httpx.Client(
        timeout=httpx.Timeout(timeout_s, connect=5.0),
        transport=guarded_transport(
            policy,
            limits=httpx.Limits(max_connections=32, max_keepalive_connections=8),
            verify=client_ssl(verify, ca_bundle),
        ),
    )


def get_connector_http(settings: SettingsDep) -> httpx.Client:
    """Pooled client for core → connector control-plane calls (DSX-HMAC per call: ``auth.deps``); it
    connects only to addresses ``auth.urls`` allows, checked when each connection opens."""
    connectors = settings.connectors
    return _connector_http(
        connectors.verify_tls,
        connectors.ca_bundle,
        connectors.request_timeout_s,
        AddressPolicy.from_settings(connectors),
    )


ConnectorHttp = Annotated[httpx.Client, Depends(get_connector_http)]


def scan_batch_size(settings: Settings) -> int:
    """Items per task on ``scan_request_queue``: the configured maximum, or one when batching is off."""
    workers = settings.workers
    return workers.scan_request_batch_max_size if workers.scan_request_batch_enabled else 1


def publish_scan_tasks(tasks: list[str] | list[dict[str, Any]]) -> None:
    """Enqueue scan tasks (each its JSON text, or a dict) on ``scan_request_queue``, in tasks of
    :func:`scan_batch_size` items."""
    from dsx_connect.workers.celery_app import celery_app

    size = scan_batch_size(get_settings())
    for start in range(0, len(tasks), size):
        batch = tasks[start : start + size]
        celery_app.send_task(SCAN_TASK, args=(batch,), **shown(batch))


def send_to_stage(stage: str, payloads: list[Any]) -> None:
    """Send payloads to a pipeline stage: scan task dicts, or item outcomes (dicts or their JSON
    text) to the action or result step, in tasks of :func:`scan_batch_size` items."""
    if stage == "scan":
        publish_scan_tasks(payloads)
        return
    from dsx_connect.workers.celery_app import celery_app

    task = {"action": ACTION_TASK, "result": RESULT_TASK}[stage]
    size = scan_batch_size(get_settings())
    for start in range(0, len(payloads), size):
        batch = payloads[start : start + size]
        celery_app.send_task(task, args=(batch,), **shown(batch))
