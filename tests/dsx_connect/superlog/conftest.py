"""Fixtures of the feed's tests: a Redis db of their own, real receivers, events and settings."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import redis

from dsx_connect.settings import Settings
from shared.models import (
    EventAction,
    EventConnector,
    EventFileInfo,
    EventScanner,
    ScanResultEvent,
    VerdictDetails,
    severity_for,
)
from tests.dsx_connect.superlog.peers import RSYSLOGD, Certs, Receiver, Rsyslog, make_certs, receiver
from tests.support.emulators import Emulator, missing, moto_server
from tests.support.redis_db import flushed_db

REDIS_DB = 11  # this folder's own database, flushed around each test

HEC_TOKEN = "hec-0123456789"
CLIENT_ID = "11111111-2222-3333-4444-555555555555"
CLIENT_SECRET = "client-secret-value"
TENANT_ID = "tenant-0001"


@pytest.fixture(autouse=True)
def _no_core_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in list(os.environ):
        if name.startswith("DSXCONNECT_"):
            monkeypatch.delenv(name)


@pytest.fixture
def feed_redis(redis_url: str) -> Iterator[redis.Redis]:
    with flushed_db(redis_url, REDIS_DB) as client:
        yield client


def scan_event(n: int, **changes: Any) -> ScanResultEvent:
    """A result event with fixed values (its lines in every format are known to the byte)."""
    verdict = changes.pop("verdict", "Malicious" if n % 5 == 0 else "Benign")
    fields: dict[str, Any] = {
        "timestamp": f"2024-05-01T12:00:{n % 60:02d}.{n % 1000:03d}Z",
        "scan_request_id": f"req-{n:05d}",
        "job_id": "job-1",
        "connector": EventConnector(name="filesystem-connector", uuid="c0ffee00-0000-4000-8000-000000000001"),
        "location": f"docs/file-{n}.txt",
        "metainfo": f"file-{n}.txt",
        "verdict": verdict,
        "verdict_details": VerdictDetails(
            event_description="EICAR Test File" if verdict == "Malicious" else "File identified as benign",
            reason="",
            threat_type="VIRUS" if verdict == "Malicious" else None,
        ),
        "file_info": EventFileInfo(file_type="TEXT", size_in_bytes=68 + n, sha256=f"{n:064x}"),
        "action": EventAction(
            requested="move", applied=verdict == "Malicious", status="success", message="moved"
        )
        if verdict == "Malicious"
        else EventAction(),
        "scanner": EventScanner(scan_guid=f"guid-{n}", duration_us=1234, engine_version="dsxa_lite 1.0"),
        "severity": severity_for(verdict),
    }
    fields.update(changes)
    return ScanResultEvent(**fields)


def make_settings(**nested: Any) -> Settings:
    """Core settings from nested dicts (``syslog={…}, superlog={…}``), no environment files."""
    return Settings(_env_file=None, **nested)  # type: ignore[call-arg]


def fast(**superlog: Any) -> dict[str, Any]:
    """Superlog settings with short waits, for tests."""
    return {
        "enabled": True,
        "flush_interval_s": 0.02,
        "retry_backoff_s": 0.05,
        "retry_backoff_max_s": 0.3,
        "lock_ttl_s": 25,  # more than twice the destinations' timeout (10 s)
        **superlog,
    }


@pytest.fixture(scope="session")
def certs(tmp_path_factory: pytest.TempPathFactory) -> Certs:
    return make_certs(tmp_path_factory.mktemp("superlog-certs"))


@pytest.fixture(scope="module")
def rsyslog(tmp_path_factory: pytest.TempPathFactory, certs: Certs, logs_dir: Path) -> Iterator[Rsyslog]:
    if RSYSLOGD is None:
        missing("rsyslogd is not installed: apt-get install rsyslog (scripts/deps/apt-packages.txt)")
    server = Rsyslog(tmp_path_factory.mktemp("rsyslog"), certs, logs_dir).start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="module")
def siem_receiver(certs: Certs, logs_dir: Path) -> Iterator[Receiver]:
    server = receiver(
        certs,
        logs_dir,
        RECEIVER_HEC_TOKEN=HEC_TOKEN,
        RECEIVER_CLIENT_ID=CLIENT_ID,
        RECEIVER_CLIENT_SECRET=CLIENT_SECRET,
    ).start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def hec(siem_receiver: Receiver) -> Receiver:
    siem_receiver.reset()
    return siem_receiver


@pytest.fixture(scope="module")
def moto(logs_dir: Path) -> Iterator[Emulator]:
    with moto_server(logs_dir) as emulator:
        yield emulator


@pytest.fixture
def aws_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.delenv("AWS_PROFILE", raising=False)


def splunk_settings(receiver: Receiver, **extra: Any) -> dict[str, Any]:
    return {
        "hec_url": receiver.url,
        "token": HEC_TOKEN,
        "index": "security",
        "host": "test-host",
        "ca_bundle": str(receiver.ca),
        **extra,
    }


def sentinel_settings(receiver: Receiver, **extra: Any) -> dict[str, Any]:
    return {
        "dce_url": receiver.url,
        "dcr_immutable_id": "dcr-00000000000000000000000000000000",
        "stream_name": "Custom-DsxConnectScanResult",
        "tenant_id": TENANT_ID,
        "client_id": CLIENT_ID,
        "client_secret": CLIENT_SECRET,
        "authority_host": receiver.url,
        "ca_bundle": str(receiver.ca),
        **extra,
    }


Produce = Callable[[list[ScanResultEvent]], None]
