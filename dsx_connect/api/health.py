"""Liveness, readiness and service information."""

from __future__ import annotations

import os
import time
from datetime import UTC, datetime
from urllib.parse import urlsplit

import httpx
from fastapi import APIRouter, Response
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field

from dsx_connect import keys
from dsx_connect.api.answers import (
    BatchingConfig,
    ConfigAnswer,
    ConnectorConfigView,
    Features,
    Health,
    Meta,
    Outcome,
    Readiness,
    ScannerCheck,
)
from dsx_connect.api.deps import RedisDep, SettingsDep
from dsx_connect.auth.access import PUBLIC, OperatorOnly, Public
from dsx_connect.superlog.buffer import destination_states as superlog_states
from dsx_connect.superlog.status import readiness as superlog_readiness
from dsx_connect.version import __version__
from shared.dsxa.client import DsxaClient
from shared.errors import DsxError
from shared.health import liveness_router
from shared.tls import client_ssl

# probes are public (SPEC §1); mounted at the root and under the API prefix
probe_router = APIRouter(tags=["health"], dependencies=[PUBLIC])
router = APIRouter(tags=["service"])


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


probe_router.include_router(liveness_router())


@probe_router.get("/healthz")
def healthz() -> Health:
    """The process is healthy."""
    return Health(ts=_now(), version=__version__)


def scanner_origin(scan_url: str) -> str:
    parts = urlsplit(scan_url)
    return f"{parts.scheme}://{parts.netloc}/"


@probe_router.get("/readyz", responses={503: {"description": "a dependency is unreachable"}})
def readyz(settings: SettingsDep, client: RedisDep, response: Response) -> Readiness:
    """Dependencies reachable: Redis and the scanner (503 names the failing one); SIEM feed destinations."""
    checks: dict[str, str] = {}
    try:
        client.ping()
        checks["redis"] = "ok"
    except Exception as exc:
        checks["redis"] = f"unreachable: {type(exc).__name__}"
    try:
        httpx.get(
            scanner_origin(settings.scanner.scan_binary_url),
            timeout=2.0,
            verify=client_ssl(settings.scanner.verify_tls, settings.scanner.ca_bundle),
        )
        checks["scanner"] = "ok"
    except httpx.HTTPError as exc:
        checks["scanner"] = f"unreachable: {type(exc).__name__}"
    if checks["redis"] == "ok":
        breaker = client.hgetall(keys.SCANNER_BREAKER)
        if breaker.get("state") == "open" and float(breaker.get("open_until") or 0) > time.time():
            checks["scanner"] = f"circuit open (scans wait): {breaker.get('last_error', '')}"[:300]
    failing = [name for name, state in checks.items() if state != "ok"]
    # SIEM feed destinations: reported; they fail readiness only with DSXCONNECT_SUPERLOG__FAIL_READYZ,
    # since scanning goes on (events wait in the buffer) while a SIEM is down.
    feed = (
        superlog_readiness(superlog_states(client, settings.superlog.active))
        if checks["redis"] == "ok"
        else {}
    )
    checks |= feed
    degraded = [name for name, state in feed.items() if state != "ok"]
    if settings.superlog.fail_readyz:
        failing += degraded
    response.status_code = 503 if failing else 200
    return Readiness(
        status="ok" if not failing else "unavailable",
        checks=checks,
        failing=failing,
        degraded=degraded,
        ts=_now(),
    )


@router.get("/meta")
def meta(settings: SettingsDep, _: Public) -> Meta:
    """Version, build and features of this core."""
    return Meta(
        name="dsx-connect",
        version=__version__,
        app_env=settings.app_env,
        api_prefix="/dsx-connect/api/v1",
        features=Features(
            scan_request_batch=settings.workers.scan_request_batch_enabled,
            jobs=True,
            sse=True,
            tls=settings.use_tls,
        ),
    )


#: versions a release image never carries (the Dockerfile's default build argument)
_UNRELEASED = {"", "0.0.0", "unknown"}


def is_dev_build() -> bool:
    """True unless this process runs from a release image: one built with ``--build-arg VERSION=…``
    (the Dockerfile sets ``DSX_CONNECT_VERSION`` from it) that is no development or local version.
    The dashboard hides its version badge in dev builds, as DSX-Connect 1.x does."""
    built = os.environ.get("DSX_CONNECT_VERSION", "").strip()
    return built in _UNRELEASED or ".dev" in built or "+" in built


class VersionInfo(BaseModel):
    """``GET /version``: what runs here."""

    name: str = "dsx-connect"
    version: str = Field(description="the core's version")
    dev_build: bool = Field(description="not a release image (from a checkout, or built without VERSION)")


@router.get("/version")
def read_version(_: Public) -> VersionInfo:
    """The core's version, and whether this is a development build (the dashboard then hides its badge)."""
    return VersionInfo(version=__version__, dev_build=is_dev_build())


# documented, not validated: the operator's view is the settings' own nesting
@router.get("/config", response_model=None, responses={200: {"model": ConfigAnswer}})
def config(settings: SettingsDep, who: Public) -> dict[str, object] | ConnectorConfigView:
    """Effective configuration, secrets redacted (operators); without an operator credential, only
    the ``workers.scan_request_batch_*`` keys that size connector batches."""
    if who.is_operator:
        return settings.redacted()
    workers = settings.workers
    return ConnectorConfigView(
        workers=BatchingConfig(
            scan_request_batch_enabled=workers.scan_request_batch_enabled,
            scan_request_batch_default_size=workers.scan_request_batch_default_size,
            scan_request_batch_max_size=workers.scan_request_batch_max_size,
        )
    )


@router.get(
    "/test/dsxa-connection",
    response_model=ScannerCheck,
    responses={502: {"model": ScannerCheck, "description": "scanner unreachable or refusing"}},
)
def test_dsxa_connection(settings: SettingsDep, _: OperatorOnly) -> JSONResponse:
    """Scan a tiny benign sample to prove the scanner is reachable and answering."""
    scanner = settings.scanner
    token = scanner.auth_token.get_secret_value() if scanner.auth_token else None
    try:
        with DsxaClient(
            scanner.scan_binary_url,
            auth_token=token,
            protected_entity=scanner.protected_entity,
            timeout_s=10.0,
            verify=client_ssl(scanner.verify_tls, scanner.ca_bundle),
        ) as dsxa:
            verdict = dsxa.scan_binary(
                b"dsx-connect connection test\n", metadata="dsx-connect:connection-test"
            )
    except DsxError as exc:
        body = {"status": "error", "message": exc.message, "scanner_url": scanner.scan_binary_url}
        return JSONResponse(body, status_code=502)
    return JSONResponse(
        {
            "status": "success",
            "message": "scanner answered",
            "scanner_url": scanner.scan_binary_url,
            "verdict": verdict.model_dump(mode="json", by_alias=True),
        }
    )


@router.get("/connection/test")
def connection_test(_: Public) -> Outcome:
    """A connector checks it can reach the core (unsigned: it reveals nothing but that)."""
    return Outcome(status="success", message="dsx-connect is reachable")
