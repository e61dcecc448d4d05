"""Verdict metadata fits the 8 KiB of custom metadata a GCS object keeps, whatever the uploader put there.

gcp-storage-emulator enforces no limit (GCS does), and keeps a key a patch removes (sent as null) as
null: the test checks what the connector writes.
"""

from __future__ import annotations

import pytest

from shared.models import ItemActionType, RequestedAction
from tests.connectors.google_cloud_storage.conftest import GcsStore
from tests.support.cloud_contract import unique

pytestmark = [pytest.mark.integration, pytest.mark.anyio]

VERDICT = {"Verdict": "Malicious", "ScannedBy": "dsx-connect"}


async def test_verdict_metadata_fits_the_8_kib_an_object_keeps(store: GcsStore) -> None:
    bucket = unique("meta")
    store.create_bucket(bucket)
    blob = store.client.bucket(bucket).blob("in/full.exe")
    blob.metadata = {"notes": "x" * 7000, "more": "y" * 1200, "small": "z"}
    blob.upload_from_string(b"malware")
    connector = store.connector(asset=bucket, auth={"enabled": False})
    try:
        version = (await connector.read("in/full.exe")).version
        answer = await connector.act("in/full.exe", RequestedAction(type=ItemActionType.TAG), version)
        assert answer.status == "success", answer
        metadata = {k: v for k, v in store.tags(bucket, "in/full.exe").items() if v is not None}
        assert (
            sum(len(k.encode()) + len(v.encode()) for k, v in metadata.items()) <= 8 * 1024
            and {k: metadata[k] for k in VERDICT} == VERDICT
        )
        assert set(metadata) == {"notes", "small", *VERDICT}, metadata  # "more" no longer fits
    finally:
        await connector.aclose()
