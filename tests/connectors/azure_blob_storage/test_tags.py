"""Verdict tags fit a blob's limits (10 index tags, 8 KiB of metadata), whatever the uploader put there.

A blob given 10 index tags made every ``tag`` fail for good, and a ``movetag`` whose copy could not
be tagged never deleted the original.
"""

from __future__ import annotations

import pytest

from shared.models import ItemActionType, RequestedAction
from tests.connectors.azure_blob_storage.conftest import AzureStore
from tests.support.cloud_contract import QUARANTINE, unique

pytestmark = [pytest.mark.integration, pytest.mark.anyio]

VERDICT = {"Verdict": "Malicious", "ScannedBy": "dsx-connect"}


async def test_verdict_index_tags_win_over_a_blobs_ten_tags_and_a_movetag_moves_it(store: AzureStore) -> None:
    container = unique("tags")
    store.create_bucket(container)
    for key in ("in/full.exe", "in/moved.exe"):
        store.service.get_blob_client(container, key).upload_blob(
            b"malware", tags={f"team-{n}": f"value-{n}" for n in range(10)}
        )
    connector = store.connector(asset=container, auth={"enabled": False})
    try:
        version = (await connector.read("in/full.exe")).version
        answer = await connector.act("in/full.exe", RequestedAction(type=ItemActionType.TAG), version)
        assert answer.status == "success", answer
        tags = store.tags(container, "in/full.exe")
        assert len(tags) == 10 and {k: tags[k] for k in VERDICT} == VERDICT

        version = (await connector.read("in/moved.exe")).version
        moved = await connector.act("in/moved.exe", RequestedAction(type=ItemActionType.MOVE_TAG), version)
        assert moved.status == "success", moved
        assert store.get(container, "in/moved.exe") is None
        assert store.tags(container, f"{QUARANTINE}/in/moved.exe") == VERDICT
    finally:
        await connector.aclose()


async def test_verdict_metadata_fits_the_8_kib_a_blob_keeps(store: AzureStore) -> None:
    """Azurite does not enforce the limit that Azure does: the test checks what is written."""
    container = unique("meta")
    store.create_bucket(container)
    filler = {"notes": "x" * 7000, "more": "y" * 1200, "small": "z"}
    store.service.get_blob_client(container, "in/full.exe").upload_blob(b"malware", metadata=filler)
    connector = store.connector(asset=container, azure_tag_mode="metadata", auth={"enabled": False})
    try:
        version = (await connector.read("in/full.exe")).version
        answer = await connector.act("in/full.exe", RequestedAction(type=ItemActionType.TAG), version)
        assert answer.status == "success", answer
        metadata = store.service.get_blob_client(container, "in/full.exe").get_blob_properties().metadata
        assert (
            sum(len(k.encode()) + len(v.encode()) for k, v in metadata.items()) <= 8 * 1024
            and {k: metadata[k] for k in VERDICT} == VERDICT
        )
        assert set(metadata) == {"notes", "small", *VERDICT}, metadata  # "more" no longer fits
    finally:
        await connector.aclose()
