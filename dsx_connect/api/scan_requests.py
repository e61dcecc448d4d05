"""Connectors submit files for scanning."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, HTTPException, Path, Response, status

from dsx_connect import intake
from dsx_connect.api.deps import (
    JobsDep,
    RedisDep,
    RegistryDep,
    ResultsDep,
    SettingsDep,
    publish_scan_tasks,
)
from dsx_connect.auth.access import OperatorOnly, OwnedScanBatch, OwnedScanRequest
from dsx_connect.cache.intake import intake_cache, serve_unchanged, store_served
from dsx_connect.results.models import ScanRequestView
from dsx_connect.state.requests import request_state
from shared.models import RegisteredConnector, ScanRequest, ScanRequestsAccepted, ScanTask

router = APIRouter(prefix="/scan", tags=["scan requests"])

#: batches of at least this many items are answered ``Connection: close`` (smaller ones, change
#: events, keep their connection: a new connection, TLS included, would cost more than they do)
SPREAD_BATCHES_OF = 100

_ERRORS: dict[int | str, dict[str, Any]] = {
    400: {"description": "`scan_job_id` names a monitor job (ids starting with `monitor-` are the core's)"},
    403: {"description": "a request names another connector (or a job of another connector)"},
    404: {"description": "the connector is not registered"},
    422: {"description": "malformed scan request"},
    429: {"description": "too much in flight (back-pressure): retry after `Retry-After` seconds"},
}


def _accept(
    requests: list[ScanRequest], registry: RegistryDep, jobs: JobsDep, client: RedisDep, settings: SettingsDep
) -> list[ScanTask]:
    cache = intake_cache(settings, client)

    def serve_cached(tasks: list[ScanTask], connectors: dict[str, RegisteredConnector]) -> list[ScanTask]:
        assert cache is not None
        verdicts = settings.workers.action_verdicts
        return serve_unchanged(cache, tasks, connectors, jobs, verdicts, store_served(settings, client))

    try:
        return intake.accept(
            requests,
            registry=registry,
            jobs=jobs,
            client=client,
            settings=settings,
            publish=publish_scan_tasks,
            serve_cached=serve_cached if cache is not None else None,
        )
    except intake.ReservedJobId as exc:
        raise HTTPException(400, str(exc)) from None
    except (intake.MissingConnector, intake.InvalidJobId) as exc:
        raise HTTPException(422, str(exc)) from None
    except intake.ForeignJob as exc:
        raise HTTPException(403, str(exc)) from None
    except intake.UnknownConnectors as exc:
        raise HTTPException(404, str(exc)) from None
    except intake.Backpressure as exc:
        raise HTTPException(429, str(exc), headers={"Retry-After": str(exc.retry_after_s)}) from None


@router.post("/request", status_code=status.HTTP_202_ACCEPTED, responses=_ERRORS)
def submit_scan_request(
    request: OwnedScanRequest, registry: RegistryDep, jobs: JobsDep, client: RedisDep, settings: SettingsDep
) -> ScanRequestsAccepted:
    """Accept one item for scanning; answers 202 with the scan request id."""
    (task,) = _accept([request], registry, jobs, client, settings)
    return ScanRequestsAccepted.model_validate(
        {
            "status": "success",
            "message": "scan request accepted",
            "description": task.location,
            "id": task.id,
            "job_id": task.job_id,
        }
    )


@router.post("/request_batch", status_code=status.HTTP_202_ACCEPTED, responses=_ERRORS)
def submit_scan_request_batch(
    batch: OwnedScanBatch,
    registry: RegistryDep,
    jobs: JobsDep,
    client: RedisDep,
    settings: SettingsDep,
    response: Response,
) -> ScanRequestsAccepted:
    """Accept many items at once (all or none); answers 202 with their ids in order."""
    if len(batch.requests) >= SPREAD_BATCHES_OF:
        # a large batch closes its connection: the connector's next one goes to whichever API
        # process (or replica) accepts it first, not to the one its kept-alive connection is tied to
        response.headers["Connection"] = "close"
    tasks = _accept(batch.requests, registry, jobs, client, settings)
    return ScanRequestsAccepted.model_validate(
        {
            "status": "success",
            "message": f"{len(tasks)} scan requests accepted",
            "id": tasks[0].job_id if len({t.job_id for t in tasks}) == 1 else None,
            "ids": [t.id for t in tasks],
            "accepted": len(tasks),
        }
    )


@router.get("/request/{request_id}", responses={404: {"description": "unknown scan request"}})
def get_scan_request(
    request_id: Annotated[str, Path(max_length=128)], client: RedisDep, results: ResultsDep, _: OperatorOnly
) -> ScanRequestView:
    """One request's state (queued or completed) and its result once there is one."""
    state = request_state(client, request_id)
    result = results.get(request_id)
    if not state and result is None:
        raise HTTPException(404, f"scan request {request_id} is unknown (or older than its retention)")
    return ScanRequestView.model_validate(
        {
            "id": request_id,
            "status": "completed" if result else state.get("status", "queued"),
            "state": state,
            "result": result,
        }
    )
