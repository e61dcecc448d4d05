"""Starting a full scan of a connector: create its job and ask the connector to enumerate into it.

One code path for ``POST /connectors/full_scan/{uuid}`` and the scheduler (``dsx_connect.schedules``);
``trigger`` records on the job who started it (``api``, ``schedule``, ``scanner_change``).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

import httpx

from dsx_connect.connector_client import AnswerKind, ConnectorClient, classify
from dsx_connect.settings import Settings
from dsx_connect.state.jobs import JobStore
from shared.models import EstimateResponse, RegisteredConnector

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class FullScanStarted:
    job_id: str
    estimate: dict[str, Any] | None


class FullScanFailed(Exception):
    """The connector did not start the scan; its job (``job_id``) is marked failed."""

    def __init__(self, message: str, job_id: str) -> None:
        super().__init__(message)
        self.job_id = job_id


def start_full_scan(
    connector: RegisteredConnector,
    jobs: JobStore,
    calls: ConnectorClient,
    settings: Settings,
    *,
    limit: int | None = None,
    batch: bool = False,
    batch_size: int | None = None,
    trigger: str = "api",
    force: bool = False,
) -> FullScanStarted:
    """Create a job and ask the connector to enumerate its asset into it; :class:`FullScanFailed`
    when the connector is unreachable or refuses. ``force``: read and scan every item, the
    unchanged ones too (dsx_connect/cache)."""
    estimate: dict[str, Any] | None = None
    try:
        answer = calls.estimate(timeout_s=10.0)
        if answer.status_code == 200:  # validated: the job keeps integers or nothing (SPEC §4 /estimate)
            estimate = EstimateResponse.model_validate_json(answer.content).model_dump()
    except (httpx.HTTPError, ValueError) as exc:  # pydantic's ValidationError is a ValueError
        log.info("no usable estimate from connector %s: %s", connector.uuid, str(exc)[:200])
    job_id = jobs.create(
        connector.uuid, connector.name, "full_scan", estimate=estimate, trigger=trigger, force=force
    )
    if batch_size is not None:
        batch_size = min(batch_size, settings.workers.scan_request_batch_max_size)
    try:
        started = calls.full_scan(job_id, limit=limit, batch=batch, batch_size=batch_size)
    except httpx.HTTPError as exc:
        jobs.fail(job_id, f"connector unreachable: {type(exc).__name__}")
        raise FullScanFailed(
            f"connector {connector.name} unreachable at {connector.url}; job {job_id} failed", job_id
        ) from None
    if started.status_code >= 400:
        kind = classify(started.status_code, started.content)
        what = "was unavailable for" if kind is AnswerKind.UNAVAILABLE else "refused"
        jobs.fail(job_id, f"connector {what} the full scan ({started.status_code})")
        raise FullScanFailed(
            f"connector {what} the full scan ({started.status_code}): {started.text[:300]}", job_id
        )
    log.info(
        "full scan started", extra={"job_id": job_id, "connector_uuid": connector.uuid, "trigger": trigger}
    )
    return FullScanStarted(job_id, estimate)
