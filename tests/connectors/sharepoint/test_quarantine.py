"""The Graph drive's quarantine folder, through the SharePoint connector against the fake Graph:
locations that Graph would resolve into it, a folder deleted by an admin, ``movetag``."""

from __future__ import annotations

from typing import Any

import pytest

from shared.connector.errors import http_status
from shared.errors import DsxError, RetryableError
from shared.models import ItemActionType, RequestedAction
from tests.connectors.sharepoint.conftest import Make
from tests.support.cloud_contract import QUARANTINE
from tests.support.graph_store import GraphStore, unique_drive

pytestmark = [pytest.mark.integration, pytest.mark.anyio]

MOVE = RequestedAction(type=ItemActionType.MOVE)
DELETE = RequestedAction(type=ItemActionType.DELETE)


async def test_dot_segments_and_other_cases_of_the_quarantine_are_refused(
    store: GraphStore, make: Make
) -> None:
    bucket = unique_drive(store)
    store.put(bucket, f"{QUARANTINE}/in/a.pdf", b"quarantined evidence")
    store.put(bucket, "in/ok.txt", b"ok")
    connector = make(asset=bucket)
    for location in (
        f"./{QUARANTINE}/in/a.pdf",
        f"in/./../{QUARANTINE}/in/a.pdf",
        f"{QUARANTINE.upper()}/in/a.pdf",
        "DsxConnect-Quarantine/in/a.pdf",
        f"in//../{QUARANTINE}/in/a.pdf",
    ):
        with pytest.raises(DsxError) as refused:
            await connector.read(location)
        assert http_status(refused.value) in (400, 403), location
        with pytest.raises(DsxError) as refused:
            await connector.act(location, DELETE)
        assert http_status(refused.value) in (400, 403), location
    assert store.get(bucket, f"{QUARANTINE}/in/a.pdf") == b"quarantined evidence"
    assert [item.location async for item in connector.enumerate()] == ["in/ok.txt"]


async def test_a_quarantine_folder_deleted_by_an_admin_is_created_again(
    store: GraphStore, make: Make
) -> None:
    bucket = unique_drive(store)
    connector = make(asset=bucket)
    store.put(bucket, "in/1.exe", b"first")
    await connector.act("in/1.exe", MOVE, (await connector.read("in/1.exe")).version)
    # an admin empties the quarantine by deleting its folder; the connector still knows its id
    await connector.client.request("DELETE", await connector._by_path(QUARANTINE))
    assert store.keys(bucket, f"{QUARANTINE}/") == []
    for n in (2, 3):
        store.put(bucket, f"in/{n}.exe", b"malware %d" % n)
        answer = await connector.act(f"in/{n}.exe", MOVE, (await connector.read(f"in/{n}.exe")).version)
        assert answer.status == "success"
    assert store.get(bucket, f"{QUARANTINE}/in/2.exe") == b"malware 2"
    assert store.get(bucket, f"{QUARANTINE}/in/3.exe") == b"malware 3"


async def test_a_move_to_a_missing_folder_is_itemnotfound_as_graph_answers_it(
    store: GraphStore, make: Make
) -> None:
    """Microsoft Graph answers a PATCH whose ``parentReference.id`` names no item with 404
    ``itemNotFound`` (the fake said 400, which a connector could not tell from a bad request)."""
    bucket = unique_drive(store)
    connector = make(asset=bucket)
    store.put(bucket, "in/x.txt", b"x")
    with pytest.raises(DsxError) as refused:
        await connector.client.request(
            "PATCH", await connector._by_path("in/x.txt"), json={"parentReference": {"id": "no-such-folder"}}
        )
    assert refused.value.status_code == 404
    assert store.get(bucket, "in/x.txt") == b"x"


async def test_a_movetag_moves_and_tags_in_one_request(store: GraphStore, make: Make) -> None:
    """The description is written with the move: no step after it can fail and leave the moved
    item untagged while a retry finds the original gone (404, recorded as applied)."""
    bucket = unique_drive(store)
    connector: Any = make(asset=bucket)
    store.put(bucket, "in/evil.exe", b"malware")

    async def unreachable(*args: Any) -> None:
        raise RetryableError("Graph unreachable", status_code=503)

    connector.tag = unreachable
    version = (await connector.read("in/evil.exe")).version
    answer = await connector.act("in/evil.exe", RequestedAction(type=ItemActionType.MOVE_TAG), version)
    assert answer.status == "success" and store.get(bucket, "in/evil.exe") is None
    assert store.tags(bucket, f"{QUARANTINE}/in/evil.exe") == {
        "Verdict": "Malicious",
        "ScannedBy": "dsx-connect",
    }
