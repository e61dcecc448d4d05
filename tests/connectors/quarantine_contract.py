"""The quarantine of the object stores (S3, Azure Blob, GCS) against their emulators.

A connector's test folder subclasses :class:`QuarantineContract`; its ``store`` fixture is the
one of :mod:`tests.support.cloud_contract`. A move never overwrites an object already in the
quarantine (a taken name becomes ``name (1).ext``, as on Graph), removes only the copy it wrote
when the original changed under it, reuses its own copy when retried, and a ``movetag`` tags the
copy before the original is deleted. When every numbered name is taken (an uploader can take them in
advance where the quarantine lies in the scanned bucket), the copy gets an unguessable name.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any, ClassVar

import pytest

from shared.connector.objectstore import FREE_NAME_TRIES, ObjectStoreConnector, numbered
from shared.errors import DsxError, RetryableError
from shared.models import ItemActionType, RequestedAction
from tests.support.cloud_contract import QUARANTINE, BucketFixtures, Store

MOVE = RequestedAction(type=ItemActionType.MOVE)
MOVE_TAG = RequestedAction(type=ItemActionType.MOVE_TAG)


async def _unreachable(*args: Any) -> None:
    """A storage call that fails as an unreachable storage does."""
    raise RetryableError("storage unreachable", status_code=503)


class QuarantineContract(BucketFixtures):
    pytestmark: ClassVar[list[pytest.MarkDecorator]] = [pytest.mark.integration, pytest.mark.anyio]

    async def test_a_second_object_quarantined_under_the_same_key_gets_a_numbered_name(
        self, store: Store, bucket: str, make_connector: Callable[..., ObjectStoreConnector[Any]]
    ) -> None:
        connector = make_connector(asset=bucket)
        for n, data in enumerate((b"first upload", b"second upload", b"third upload")):
            store.put(bucket, "inbox/invoice.pdf", data)
            version = (await connector.read("inbox/invoice.pdf")).version
            answer = await connector.act("inbox/invoice.pdf", MOVE, version)
            moved = f"{QUARANTINE}/inbox/invoice{f' ({n})' if n else ''}.pdf"
            assert answer.destination is not None and answer.destination.endswith(moved), answer
        assert store.get(bucket, f"{QUARANTINE}/inbox/invoice.pdf") == b"first upload"
        assert store.get(bucket, f"{QUARANTINE}/inbox/invoice (1).pdf") == b"second upload"
        assert store.get(bucket, f"{QUARANTINE}/inbox/invoice (2).pdf") == b"third upload"
        assert store.get(bucket, "inbox/invoice.pdf") is None

    async def test_a_move_whose_original_changed_after_the_copy_keeps_earlier_evidence(
        self, store: Store, bucket: str, make_connector: Callable[..., ObjectStoreConnector[Any]]
    ) -> None:
        store.put(bucket, f"{QUARANTINE}/b/report.pdf", b"earlier evidence")
        store.put(bucket, "b/report.pdf", b"malicious")
        connector: Any = make_connector(asset=bucket)
        version = (await connector.read("b/report.pdf")).version
        copy = connector.copy

        async def copy_then_the_user_saves(*args: Any) -> Any:
            written = await copy(*args)
            store.put(bucket, "b/report.pdf", b"the user's clean edit")
            return written

        connector.copy = copy_then_the_user_saves
        try:
            await connector.act("b/report.pdf", MOVE, version)
        except DsxError as exc:
            assert exc.status_code == 412
        assert store.get(bucket, f"{QUARANTINE}/b/report.pdf") == b"earlier evidence"
        if getattr(store, "honours_preconditions", True):  # gcp-storage-emulator deletes the edit
            assert store.get(bucket, "b/report.pdf") == b"the user's clean edit"
            assert store.keys(bucket, f"{QUARANTINE}/") == [f"{QUARANTINE}/b/report.pdf"]

    async def test_a_move_retried_after_a_failed_delete_reuses_its_copy(
        self, store: Store, bucket: str, make_connector: Callable[..., ObjectStoreConnector[Any]]
    ) -> None:
        store.put(bucket, "in/evil.exe", b"malware")
        connector: Any = make_connector(asset=bucket)
        version = (await connector.read("in/evil.exe")).version
        delete = connector.delete

        connector.delete = _unreachable
        with pytest.raises(DsxError):
            await connector.act("in/evil.exe", MOVE, version)
        connector.delete = delete
        answer = await connector.act("in/evil.exe", MOVE, version)
        assert answer.destination is not None and answer.destination.endswith(f"{QUARANTINE}/in/evil.exe")
        assert store.keys(bucket, f"{QUARANTINE}/") == [f"{QUARANTINE}/in/evil.exe"]
        assert store.get(bucket, "in/evil.exe") is None

    async def test_a_movetag_tags_the_copy_before_the_original_is_deleted(
        self, store: Store, bucket: str, make_connector: Callable[..., ObjectStoreConnector[Any]]
    ) -> None:
        store.put(bucket, "in/evil.exe", b"malware")
        connector: Any = make_connector(asset=bucket)
        version = (await connector.read("in/evil.exe")).version
        tag = connector.tag

        connector.tag = _unreachable
        with pytest.raises(DsxError):
            await connector.act("in/evil.exe", MOVE_TAG, version)
        # the retry must find the original: a 404 would record the action applied, the copy untagged
        assert store.get(bucket, "in/evil.exe") == b"malware"
        connector.tag = tag
        await connector.act("in/evil.exe", MOVE_TAG, version)
        assert store.get(bucket, "in/evil.exe") is None
        assert store.keys(bucket, f"{QUARANTINE}/") == [f"{QUARANTINE}/in/evil.exe"]
        assert store.tags(bucket, f"{QUARANTINE}/in/evil.exe")["Verdict"] == "Malicious"

    async def test_a_quarantine_whose_numbered_names_are_all_taken_still_takes_the_object(
        self, store: Store, bucket: str, make_connector: Callable[..., ObjectStoreConnector[Any]]
    ) -> None:
        """The quarantine lies in the scanned bucket by default: an uploader can create its name for
        an object and every numbered variant first. The move failed for good ("no free name") and
        the malware stayed; it now takes a name nobody can have created in advance."""
        taken = [numbered(f"{QUARANTINE}/in/evil.exe", n) for n in range(FREE_NAME_TRIES)]
        for n, name in enumerate(taken):
            store.put(bucket, name, f"decoy {n}".encode())
        store.put(bucket, "in/evil.exe", b"malware")
        connector = make_connector(asset=bucket)
        version = (await connector.read("in/evil.exe")).version
        answer = await connector.act("in/evil.exe", MOVE, version)
        assert answer.status == "success" and answer.destination is not None, answer
        moved = answer.destination.removeprefix(connector.where(bucket, ""))
        assert moved not in taken and re.fullmatch(
            rf"{QUARANTINE}/in/evil \([0-9a-f]{{12}}-[0-9a-f]{{32}}\)\.exe", moved
        ), moved
        assert store.get(bucket, moved) == b"malware" and store.get(bucket, "in/evil.exe") is None
        assert all(store.get(bucket, name) == f"decoy {n}".encode() for n, name in enumerate(taken))
