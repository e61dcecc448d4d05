"""How an item's outcome becomes the result event of SPEC §7, and when it needs an action."""

from __future__ import annotations

import pytest

from dsx_connect.workers.outcome import ConnectorRef, ItemOutcome
from shared.models import DsxaVerdict, EventAction, EventError, ItemActionType, RequestedAction, ScanTask

pytestmark = pytest.mark.unit


def outcome(verdict: str | None, item_action: str = "move", requested: str | None = None) -> ItemOutcome:
    task = ScanTask(
        id="r1", connector_uuid="c1", location="a/b.txt", metainfo="b.txt", job_id="j1", size_in_bytes=12,
        requested_action=RequestedAction(type=ItemActionType(requested)) if requested else None,
    )  # fmt: skip
    ref = ConnectorRef(
        uuid="c1",
        name="filesystem-connector",
        url="http://x/filesystem-connector",
        item_action=ItemActionType(item_action),
    )
    body = None
    if verdict:
        body = DsxaVerdict.model_validate(
            {"scan_guid": "g", "verdict": verdict, "file_info": {"file_type": "Text", "file_size_in_bytes": 12, "file_hash": "h"},
             "scan_duration_in_microseconds": 7, "verdict_details": {"threat_type": "VIRUS"}}
        )  # fmt: skip
    return ItemOutcome(task=task, connector=ref, verdict=body)


def test_malicious_with_move_connector_needs_action() -> None:
    assert outcome("Malicious").needs_action(["Malicious"])


def test_benign_needs_no_action() -> None:
    assert not outcome("Benign").needs_action(["Malicious"])


def test_connector_with_nothing_needs_no_action() -> None:
    assert not outcome("Malicious", item_action="nothing").needs_action(["Malicious"])


def test_requested_action_wins_over_connector_setting() -> None:
    item = outcome("Malicious", item_action="nothing", requested="delete")
    assert item.planned_action() is ItemActionType.DELETE
    assert item.needs_action(["Malicious"])


def test_event_carries_the_spec_fields() -> None:
    item = outcome("Malicious").model_copy(
        update={"action": EventAction(requested="move", applied=True, status="success")}
    )
    event = item.to_event().model_dump(mode="json")
    assert event["event_type"] == "scan_result" and event["schema_version"] == 1
    assert event["scan_request_id"] == "r1" and event["job_id"] == "j1"
    assert event["connector"] == {"name": "filesystem-connector", "uuid": "c1"}
    assert event["file_info"] == {"file_type": "Text", "size_in_bytes": 12, "sha256": "h"}
    assert event["action"]["applied"] is True
    assert event["scanner"]["scan_guid"] == "g" and event["scanner"]["duration_us"] == 7
    assert event["severity"] == 2
    assert event["timestamp"].endswith("Z")


def test_failed_scan_is_a_visible_not_scanned_result() -> None:
    item = outcome(None).model_copy(update={"error": EventError(kind="exhausted", message="scanner down")})
    event = item.to_event()
    assert event.verdict == "Not Scanned"
    assert event.error is not None and event.error.kind == "exhausted"
    assert event.verdict_details.reason == "scanner down"
    assert event.severity == 3


def test_outcome_round_trips_through_json() -> None:
    item = outcome("Malicious")
    again = ItemOutcome.model_validate(item.dump())
    assert again == item


def test_task_messages_carry_outcomes_as_json_text_and_older_dicts_still_load() -> None:
    item = outcome("Malicious")
    item.verdict.x_custom_metadata = "file-loc:a,file-meta:b"  # an aliased field survives both forms
    item.error = EventError(kind="permanent", message="m")
    assert ItemOutcome.load_many([item.dump_json(), item.dump()]) == [item, item]


@pytest.mark.parametrize(
    "item",
    [
        pytest.param(outcome("Benign"), id="benign, default action"),
        pytest.param(
            outcome("Malicious").model_copy(
                update={
                    "action": EventAction(requested="move", applied=True, status="success", message="moved")
                }
            ),
            id="malicious, action applied",
        ),
        pytest.param(outcome("Malicious", item_action="nothing", requested="delete"), id="requested action"),
        pytest.param(
            outcome(None).model_copy(update={"error": EventError(kind="exhausted", message="scanner down")}),
            id="failed scan",
        ),
        pytest.param(
            outcome("Malicious").model_copy(
                update={
                    "verdict": DsxaVerdict.model_validate(
                        {
                            "verdict": "Malicious",
                            "engine_version": "9.9",
                            "cached": True,
                            "verdict_details": {"event_description": "YARA", "matched_rules": ["r1"]},
                        }
                    )
                }
            ),
            id="scanner extras",
        ),
    ],
)
def test_the_event_dict_is_the_event_model_as_json(item: ItemOutcome) -> None:
    """The result step's fast path builds the same §7 event as the model, field for field."""
    expected = item.to_event(engine_version="e1").model_dump(mode="json")
    built = item.event_dict(expected["timestamp"], engine_version="e1")
    assert built == expected
    assert list(built) == list(expected)  # same field order, so the stored JSON reads the same
