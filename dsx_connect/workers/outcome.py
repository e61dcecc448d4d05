"""What one item carries from step to step: scan → verdict action → result → notification."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from pydantic import BaseModel, ConfigDict

from shared.models import (
    DsxaVerdict,
    EventAction,
    EventConnector,
    EventError,
    EventFileInfo,
    EventScanner,
    ItemActionType,
    RegisteredConnector,
    ScanResultEvent,
    ScanTask,
    Verdict,
    VerdictDetails,
    severity_for,
)


class ConnectorRef(BaseModel):
    """The parts of a registered connector the later steps need."""

    model_config = ConfigDict(extra="ignore")

    uuid: str
    name: str = ""
    url: str = ""
    item_action: ItemActionType = ItemActionType.NOTHING

    @classmethod
    def of(cls, connector: RegisteredConnector) -> ConnectorRef:
        return cls(
            uuid=connector.uuid, name=connector.name, url=connector.url, item_action=connector.item_action
        )


class ItemOutcome(BaseModel):
    model_config = ConfigDict(extra="ignore")

    task: ScanTask
    connector: ConnectorRef
    verdict: DsxaVerdict | None = None
    error: EventError | None = None
    action: EventAction | None = None
    action_attempt: int = 0
    item_version: str | None = None  # the version whose bytes were scanned (guarded actions)
    action_claim: str | None = None  # the pending action claim a retried attempt holds (state.actions)
    action_uncertain: bool = False  # an earlier attempt's ask may have reached the connector, unanswered

    def dump(self) -> dict[str, Any]:
        return self.model_dump(mode="json", by_alias=True)

    def dump_json(self) -> str:
        """The form a task message carries: pydantic's JSON costs half of a dict through kombu's JSON."""
        return self.model_dump_json(by_alias=True)

    @classmethod
    def load_many(cls, items: list[str | dict[str, Any]]) -> list[ItemOutcome]:
        """Outcomes from a task message: JSON text, or dicts (older messages, dead letters requeued)."""
        return [cls.model_validate_json(i) if isinstance(i, str) else cls.model_validate(i) for i in items]

    def planned_action(self) -> ItemActionType:
        """The action the connector will be asked to apply: the request's own, else the connector's."""
        requested = self.task.requested_action
        if requested is not None and requested.type not in (
            ItemActionType.NOTHING,
            ItemActionType.NOT_IMPLEMENTED,
        ):
            return requested.type
        if self.connector.item_action in (ItemActionType.NOTHING, ItemActionType.NOT_IMPLEMENTED):
            return ItemActionType.NOTHING
        return self.connector.item_action

    def needs_action(self, action_verdicts: list[str]) -> bool:
        return (
            self.verdict is not None
            and self.verdict.verdict in action_verdicts
            and self.planned_action() is not ItemActionType.NOTHING
        )

    def event_dict(self, timestamp: str, engine_version: str = "") -> dict[str, Any]:
        """``to_event(...).model_dump(mode="json")``, built directly: the result step makes one per
        item, and five nested models cost several times this dict. Every field here comes from
        models already validated (the task, the connector, the scanner's verdict); a failed scan,
        which is rare, takes the model path."""
        task, verdict = self.task, self.verdict
        if verdict is None:
            event = self.to_event(engine_version).model_dump(mode="json")
            event["timestamp"] = timestamp
            return event
        extra = verdict.model_extra or {}
        info = verdict.file_info
        action = self.action
        return {
            "event_type": "scan_result",
            "schema_version": 1,
            "timestamp": timestamp,
            "scan_request_id": task.id,
            "job_id": task.job_id,
            "connector": {"name": self.connector.name, "uuid": self.connector.uuid},
            "location": task.location,
            "metainfo": task.metainfo,
            "verdict": verdict.verdict,
            "verdict_details": verdict.verdict_details.model_dump(mode="json"),
            "file_info": {
                "file_type": info.file_type,
                "size_in_bytes": info.file_size_in_bytes,
                "sha256": info.file_hash,
            },
            "action": (
                action.model_dump(mode="json")
                if action is not None
                else {
                    "requested": self.planned_action().value,
                    "applied": False,
                    "status": "nothing",
                    "message": "",
                }
            ),
            "scanner": {
                "scan_guid": verdict.scan_guid,
                "duration_us": verdict.scan_duration_in_microseconds,
                "engine_version": str(extra.get("engine_version") or engine_version),
                "cached": bool(extra.get("cached", False)),
            },
            "severity": severity_for(verdict.verdict),
            "error": self.error.model_dump(mode="json") if self.error is not None else None,
        }

    def to_event(self, engine_version: str = "") -> ScanResultEvent:
        """The result event of SPEC §7; a failed scan is a ``Not Scanned`` event carrying its error."""
        task, verdict = self.task, self.verdict
        common: dict[str, Any] = {
            "scan_request_id": task.id,
            "job_id": task.job_id,
            "connector": EventConnector(name=self.connector.name, uuid=self.connector.uuid),
            "location": task.location,
            "metainfo": task.metainfo,
            "action": self.action or EventAction(requested=self.planned_action().value),
            "error": self.error,
        }
        if verdict is None:
            message = self.error.message if self.error else "not scanned"
            return ScanResultEvent(
                **common,
                verdict=Verdict.NOT_SCANNED.value,
                verdict_details=VerdictDetails(event_description="File could not be scanned", reason=message),
                file_info=EventFileInfo(size_in_bytes=task.size_in_bytes or 0),
                severity=severity_for(Verdict.NOT_SCANNED.value, failed=True),
            )
        extra = verdict.model_extra or {}
        return ScanResultEvent(
            **common,
            verdict=verdict.verdict,
            verdict_details=verdict.verdict_details,
            file_info=EventFileInfo(
                file_type=verdict.file_info.file_type,
                size_in_bytes=verdict.file_info.file_size_in_bytes,
                sha256=verdict.file_info.file_hash,
            ),
            scanner=EventScanner(
                scan_guid=verdict.scan_guid,
                duration_us=verdict.scan_duration_in_microseconds,
                engine_version=str(extra.get("engine_version") or engine_version),
                cached=bool(extra.get("cached", False)),
            ),
            severity=severity_for(verdict.verdict),
        )


def notification_args(outcomes: Sequence[ItemOutcome]) -> tuple[list[str], list[str]]:
    """The notification task's arguments for stored outcomes: their request ids, and their jobs."""
    return [o.task.id for o in outcomes], sorted({o.task.job_id for o in outcomes})
