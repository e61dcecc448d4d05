"""Request ids: a connector-named item keeps the same id on resubmission (the uuid5 of its name)."""

from __future__ import annotations

import uuid

import pytest

from dsx_connect.intake import _ITEM_NAMESPACE, request_id_for

pytestmark = pytest.mark.unit


@pytest.mark.parametrize("item", ["1", "42", "9999999", "ü/é", "a:b:c"])
def test_a_named_item_gets_the_uuid5_of_its_job_and_name(item: str) -> None:
    job = "6666ab0588744ae1981479703002d87b"
    assert request_id_for(job, item) == uuid.uuid5(_ITEM_NAMESPACE, f"{job}:{item}").hex


def test_an_unnamed_item_gets_a_fresh_id() -> None:
    first, second = request_id_for("j", None), request_id_for("j", None)
    assert first != second and len(first) == 32 and uuid.UUID(first).version == 4


def test_a_change_event_naming_its_version_keeps_its_id_and_job_when_resubmitted() -> None:
    from dsx_connect.intake import change_event_id
    from shared.models import ScanRequest

    event = ScanRequest(location="a/b.txt", metainfo="a/b.txt", item_version="dev:ino:5:123")
    first = change_event_id("c1", event)
    assert first is not None and first == change_event_id("c1", event.model_copy())
    assert first != change_event_id("c1", event.model_copy(update={"item_version": "dev:ino:5:124"}))
    assert first != change_event_id("c2", event)
    assert change_event_id("c1", ScanRequest(location="a/b.txt", metainfo="")) is None


def test_a_scan_message_item_is_read_alike_as_the_intakes_json_text_or_as_a_dict() -> None:
    """The intake sends each task as the JSON text it stores as the pending entry (encoded once);
    the lease sweep, requeues and older messages send dicts. Both forms are the same task, for the
    scan step and for its dead letters."""
    from dsx_connect.workers.guard import dead_letters_for
    from shared.models import RequestedAction, ScanTask

    task = ScanTask(
        id="r1", connector_uuid="c1", location="ü/a b.txt", job_id="j1", job_item_id="7", size_in_bytes=3,
        requested_action=RequestedAction.model_validate({"type": "move", "destination": {"path": "q/"}}),
        item_version="5:123", resend=2,
    )  # fmt: skip
    assert ScanTask.load(task.model_dump_json()) == ScanTask.load(task.model_dump(mode="json")) == task
    (from_text,), _ = dead_letters_for("scan", [task.model_dump_json()], "gave up")
    (from_dict,), _ = dead_letters_for("scan", [task.model_dump(mode="json")], "gave up")
    # the same letter but for its failure time, stamped when each was made (they may straddle a ms)
    assert from_text.model_copy(update={"failed_at": from_dict.failed_at}) == from_dict
    assert from_text.id == "r1" and from_text.location == "ü/a b.txt"
    (unreadable,), _ = dead_letters_for("scan", ['{"id": "r1"'], "gave up")
    assert unreadable.id.startswith("unreadable-")
    # requeued, it fails again: the same letter (its attempt ends), not a second one beside it
    (again,), _ = dead_letters_for("scan", [unreadable.payload], "gave up")
    assert again.id == unreadable.id and again.payload == unreadable.payload


def test_two_connectors_never_share_a_change_event_id_whatever_their_uuids_and_locations_hold() -> None:
    """The id was the uuid5 of ``change:<uuid>:<location>\\0<version>...``: connector ``B:evil`` with
    ``payload.exe`` and connector ``B`` with ``evil:payload.exe`` (same version) got one id, so the
    first to submit took the other's event (its monitor job: the other's batch was refused 403)."""
    from dsx_connect.intake import change_event_id
    from shared.models import ScanRequest

    def event(location: str, version: str = "v1", item: str | None = None) -> ScanRequest:
        return ScanRequest(location=location, metainfo=location, item_version=version, job_item_id=item)

    assert change_event_id("B:evil", event("payload.exe")) != change_event_id("B", event("evil:payload.exe"))
    # the rescan of an item's new version (workers.actions: ``changed:<uuid>`` and the request id)
    assert request_id_for("changed:B:evil", "abc") != request_id_for("changed:B", "evil:abc")
