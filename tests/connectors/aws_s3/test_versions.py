"""An S3 object's version is more than its ETag, the same from list, head, get and a notification.

The ETag of a single-part upload is the MD5 of its bytes: a benign file and a malicious one made
to collide (cheap with MD5) had the same version, so the scan cache, keyed on it, served the
benign verdict for the malicious file uploaded over it. The version now adds the LastModified
second (``ETag;mtime=…``) or, in a versioned bucket, the VersionId (``ETag;vid=…``). moto cannot
be made to collide, so the tests write the same bytes twice: each write is a new version.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import pytest

from connectors.aws_s3.connector import AwsS3Connector
from shared.errors import DsxError
from shared.models import ItemActionType, RequestedAction
from tests.connectors.aws_s3.conftest import S3Store, s3_event
from tests.support.cloud_contract import unique
from tests.support.procs import wait_for

pytestmark = [pytest.mark.integration, pytest.mark.anyio]


@pytest.fixture
def bucket(store: S3Store) -> str:
    name = unique("ver")
    store.create_bucket(name)
    return name


@pytest.fixture
def connector(store: S3Store, bucket: str) -> Iterator[AwsS3Connector]:
    made = store.connector(asset=f"{bucket}/in", auth={"enabled": False})
    yield made
    made.s3.close()


async def versions(connector: AwsS3Connector, bucket: str, key: str) -> dict[str, Any]:
    """The object's version as listing, head and read answer it."""
    listed = {item.location: item.version async for item in connector.enumerate()}
    return {
        "list": listed[key],
        "head": await connector.head(bucket, key),
        "read": (await connector.read(key)).version,
    }


def next_second(store: S3Store, bucket: str, key: str) -> None:
    """Wait until the clock has left the second of the object's LastModified (moto runs on this host)."""
    modified = store.s3.head_object(Bucket=bucket, Key=key)["LastModified"].timestamp()
    wait_for(lambda: time.time() >= int(modified) + 1, timeout=5, interval=0.02, what="the next second")


async def test_the_same_bytes_written_again_later_are_a_new_version(
    store: S3Store, bucket: str, connector: AwsS3Connector
) -> None:
    key = "in/invoice.pdf"
    store.put(bucket, key, b"the same bytes")
    first = await versions(connector, bucket, key)
    assert first["list"] and len(set(first.values())) == 1, first  # list, head and read agree

    next_second(store, bucket, key)
    store.put(bucket, key, b"the same bytes")  # same ETag, as a colliding file would have
    second = await versions(connector, bucket, key)
    assert len(set(second.values())) == 1, second
    assert second["read"] != first["read"], "the scan cache would serve the first file's verdict"

    # an action guarded by the first write's version touches nothing (412), the second's applies
    tag = RequestedAction(type=ItemActionType.TAG)
    with pytest.raises(DsxError) as stale:
        await connector.act(key, tag, first["read"])
    assert stale.value.status_code == 412
    answer = await connector.act(key, tag, second["read"])
    assert answer.status == "success" and store.tags(bucket, key)["Verdict"] == "Malicious"


async def test_guarded_delete_and_move_still_apply_to_the_version_read(
    store: S3Store, bucket: str, connector: AwsS3Connector
) -> None:
    store.put(bucket, "in/a.exe", b"malware a")
    store.put(bucket, "in/b.exe", b"malware b")
    for key, kind in (("in/a.exe", ItemActionType.DELETE), ("in/b.exe", ItemActionType.MOVE_TAG)):
        version = (await connector.read(key)).version
        answer = await connector.act(key, RequestedAction(type=kind), version)
        assert answer.status == "success", answer
        assert store.get(bucket, key) is None
    assert store.get(bucket, "dsxconnect-quarantine/in/b.exe") == b"malware b"


async def test_a_versioned_bucket_names_the_version_id_everywhere(
    store: S3Store, bucket: str, connector: AwsS3Connector
) -> None:
    store.s3.put_bucket_versioning(Bucket=bucket, VersioningConfiguration={"Status": "Enabled"})
    key = "in/report.pdf"
    store.put(bucket, key, b"the same bytes")
    store.put(bucket, key, b"the same bytes")  # within the same second: the VersionId tells them apart
    store.put(bucket, "in/deleted.pdf", b"gone")
    store.s3.delete_object(Bucket=bucket, Key="in/deleted.pdf")  # its latest is a delete marker

    head = store.s3.head_object(Bucket=bucket, Key=key)
    found = await versions(connector, bucket, key)
    assert set(found.values()) == {f"{head['ETag'].strip(chr(34))};vid={head['VersionId']}"}, found
    assert [item.location async for item in connector.enumerate()] == [key]  # the current versions only

    event = s3_event(bucket, key, 14, version_id=head["VersionId"])
    event["Records"][0]["s3"]["object"]["eTag"] = head["ETag"].strip('"')
    notified = await connector.webhook(event)
    assert isinstance(notified, list) and [i.version for i in notified] == [found["read"]]

    older = store.s3.list_object_versions(Bucket=bucket, Prefix=key)["Versions"]
    stale = next(v for v in older if not v["IsLatest"])
    with pytest.raises(DsxError) as refused:
        await connector.act(
            key,
            RequestedAction(type=ItemActionType.DELETE),
            f"{stale['ETag'].strip(chr(34))};vid={stale['VersionId']}",
        )
    assert refused.value.status_code == 412
    moved = await connector.act(key, RequestedAction(type=ItemActionType.MOVE), found["read"])
    assert moved.status == "success" and store.get(bucket, key) is None


async def test_a_notification_without_a_version_id_leaves_the_version_to_the_read(
    connector: AwsS3Connector, bucket: str
) -> None:
    """An S3 event has the eTag and no LastModified (eventTime is the event's time, not the
    object's): in an unversioned bucket it names no version, and the read supplies one."""
    notified = await connector.webhook(s3_event(bucket, "in/new.pdf", 3))
    assert isinstance(notified, list) and [i.version for i in notified] == [None]
