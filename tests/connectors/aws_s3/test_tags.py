"""Verdict tags fit S3's limit of 10 tags per object, whatever the uploader put there.

An uploader who gave the object 10 tags made every ``tag`` fail for good (S3 refuses an 11th), and a
``movetag`` copied the 10 tags into the quarantine, failed to tag the copy, and never deleted the
original: the malware stayed where it was.
"""

from __future__ import annotations

import pytest

from shared.models import ItemActionType, RequestedAction
from tests.connectors.aws_s3.conftest import S3Store
from tests.support.cloud_contract import QUARANTINE, unique

pytestmark = [pytest.mark.integration, pytest.mark.anyio]

FULL = {f"team-{n}": f"value {n}" for n in range(10)}


def put_with_tags(store: S3Store, bucket: str, key: str, tags: dict[str, str]) -> None:
    store.put(bucket, key, b"malware")
    tag_set = [{"Key": k, "Value": v} for k, v in tags.items()]
    store.s3.put_object_tagging(Bucket=bucket, Key=key, Tagging={"TagSet": tag_set})


async def test_verdict_tags_win_over_an_objects_ten_tags(store: S3Store) -> None:
    bucket = unique("tags")
    store.create_bucket(bucket)
    put_with_tags(store, bucket, "in/full.exe", FULL)
    put_with_tags(store, bucket, "in/liar.exe", {"verdict": "Benign", "owner": "me"})
    connector = store.connector(asset=bucket, auth={"enabled": False})
    try:
        for key in ("in/full.exe", "in/liar.exe"):
            version = (await connector.read(key)).version
            answer = await connector.act(key, RequestedAction(type=ItemActionType.TAG), version)
            assert answer.status == "success", answer
        tags = store.tags(bucket, "in/full.exe")
        assert len(tags) == 10 and tags["Verdict"] == "Malicious" and tags["ScannedBy"] == "dsx-connect"
        assert {k: tags[k] for k in tags if k.startswith("team-")} == {
            f"team-{n}": f"value {n}" for n in range(8)
        }
        # a key that differs from a verdict key only in case is dropped too: no "verdict=Benign" beside it
        assert store.tags(bucket, "in/liar.exe") == {
            "owner": "me",
            "Verdict": "Malicious",
            "ScannedBy": "dsx-connect",
        }
    finally:
        await connector.aclose()


async def test_a_movetag_of_an_object_with_ten_tags_moves_it(store: S3Store) -> None:
    bucket = unique("tags")
    store.create_bucket(bucket)
    put_with_tags(store, bucket, "in/evil.exe", FULL)
    connector = store.connector(asset=bucket, auth={"enabled": False})
    try:
        version = (await connector.read("in/evil.exe")).version
        answer = await connector.act("in/evil.exe", RequestedAction(type=ItemActionType.MOVE_TAG), version)
        assert answer.status == "success", answer
        assert store.get(bucket, "in/evil.exe") is None
        # the copy in the quarantine has exactly the verdict's tags (the uploader's stay out of it)
        assert store.tags(bucket, f"{QUARANTINE}/in/evil.exe") == {
            "Verdict": "Malicious",
            "ScannedBy": "dsx-connect",
        }
    finally:
        await connector.aclose()
