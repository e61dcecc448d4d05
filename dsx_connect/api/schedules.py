"""Scheduled full scans of connectors (``docs/schedules.md``): set, read and delete a connector's
schedule, and list them all with the scheduler's state."""

from __future__ import annotations

import time
from typing import Annotated

from fastapi import APIRouter, Depends, HTTPException, Path

from dsx_connect.api.deps import KnownConnector, RedisDep, RegistryDep, SettingsDep
from dsx_connect.auth.access import OperatorOnly
from dsx_connect.schedules import cron
from dsx_connect.schedules.models import (
    SchedulePublic,
    ScheduleRecord,
    SchedulerStatus,
    ScheduleSpec,
    SchedulesPublic,
    iso,
)
from dsx_connect.state.schedule_lease import current_leader
from dsx_connect.state.schedules import ScheduleStore
from shared.models import StatusResponse

router = APIRouter(prefix="/connectors", tags=["schedules"])

ConnectorUuid = Annotated[str, Path(max_length=64)]


def get_schedules(settings: SettingsDep, client: RedisDep) -> ScheduleStore:
    return ScheduleStore(client, settings.scheduler.claim_ttl_s)


SchedulesDep = Annotated[ScheduleStore, Depends(get_schedules)]


def _public(record: ScheduleRecord, store: ScheduleStore, registry: RegistryDep) -> SchedulePublic:
    connector = registry.get(record.connector_uuid, include_expired=True)
    next_ts = None
    if record.enabled and record.cron:
        next_ts = cron.next_slot(record.cron, record.timezone, max(time.time(), record.since_ts))
    return SchedulePublic(
        **record.model_dump(),
        **store.run(record.connector_uuid).model_dump(),
        connector_name=connector.name if connector else None,
        next_run=iso(next_ts) if next_ts is not None else None,
    )


@router.get("/schedules")
def list_schedules(
    _: OperatorOnly, store: SchedulesDep, registry: RegistryDep, settings: SettingsDep, client: RedisDep
) -> SchedulesPublic:
    """Every connector's schedule with its next and last run, and which replica runs them."""
    return SchedulesPublic(
        schedules=[_public(record, store, registry) for record in store.all()],
        scheduler=SchedulerStatus(
            enabled_here=settings.scheduler.enabled,
            leader=current_leader(client),
            scanner_identity=store.scanner_identity(),
        ),
    )


@router.get("/schedule/{uuid}", responses={404: {"description": "the connector has no schedule"}})
def get_schedule(
    _: OperatorOnly, uuid: ConnectorUuid, store: SchedulesDep, registry: RegistryDep
) -> SchedulePublic:
    """A connector's schedule with its next and last run."""
    record = store.get(uuid)
    if record is None:
        raise HTTPException(404, f"connector {uuid} has no schedule")
    return _public(record, store, registry)


@router.put(
    "/schedule/{uuid}",
    responses={
        404: {"description": "unknown connector"},
        422: {"description": "a bad cron expression or time zone (the field is named)"},
    },
)
def put_schedule(
    _: OperatorOnly, connector: KnownConnector, spec: ScheduleSpec, store: SchedulesDep, registry: RegistryDep
) -> SchedulePublic:
    """Set a connector's schedule of full scans (5-field cron in a time zone; default UTC)."""
    return _public(store.put(connector.uuid, spec), store, registry)


@router.delete("/schedule/{uuid}", responses={404: {"description": "the connector has no schedule"}})
def delete_schedule(_: OperatorOnly, uuid: ConnectorUuid, store: SchedulesDep) -> StatusResponse:
    """Remove a connector's schedule (a scan it started runs on)."""
    if not store.delete(uuid):
        raise HTTPException(404, f"connector {uuid} has no schedule")
    return StatusResponse(status="success", message="schedule removed", id=uuid)
