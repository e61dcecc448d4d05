"""How the scan step groups small items for ``read_files``: one group per connector registration
(uuid), each signed with that connector's own key pair, even when two registrations share a URL."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import pytest
import redis

from dsx_connect.auth.signing import SignerCache
from dsx_connect.settings import Settings
from dsx_connect.workers import scan
from dsx_connect.workers.outcome import ConnectorRef
from shared.errors import DsxError
from shared.hmac_auth import Signer
from shared.models import DsxaVerdict, ScanTask
from tests.dsx_connect.workers.standins import context

pytestmark = pytest.mark.integration  # the worker context's stores are on the session's Redis

URL = "http://127.0.0.1:9/shared"  # one address, two registrations
SIGNERS = {"conn-a": Signer("key-a", "secret-a"), "conn-b": Signer("key-b", "secret-b")}


class Keys:
    """Stands in for ``ConnectorKeys``: each connector's pair."""

    def signer(self, uuid: str) -> Signer | None:
        return SIGNERS.get(uuid)


def item(uuid: str, n: int) -> tuple[ScanTask, ConnectorRef]:
    task = ScanTask(
        id=f"{uuid}-{n}", connector_uuid=uuid, location=f"f{n}", metainfo=f"f{n}", job_id="j", size_in_bytes=5
    )
    return task, ConnectorRef(uuid=uuid, name=uuid, url=URL)


def test_items_of_two_connectors_at_one_url_are_read_in_groups_signed_each_with_its_own_pair(
    client: redis.Redis, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Groups were keyed by URL only and signed with the first item's connector's pair: the other
    connector's items were read with credentials not theirs."""
    calls: list[tuple[str, list[str], str | None]] = []

    async def read_items(_pool: Any, tasks: list[ScanTask], ref: ConnectorRef, _cfg: Any, signer: Signer | None, _v: Any) -> list[bytes | DsxError | None]:  # fmt: skip
        calls.append((ref.uuid, [t.connector_uuid for t in tasks], signer.key_id if signer else None))
        return [b"bytes" for _ in tasks]

    async def scan_bytes(*_args: Any) -> DsxaVerdict:
        return DsxaVerdict(verdict="Benign")

    monkeypatch.setattr(scan, "read_items", read_items)
    monkeypatch.setattr(scan, "scan_bytes", scan_bytes)
    ctx = context(client, Settings())
    ctx.signers = SignerCache(Keys())  # type: ignore[arg-type]
    items = [item("conn-a", 1), item("conn-b", 2), item("conn-a", 3), item("conn-b", 4)]

    results = asyncio.run(scan._scan_all(ctx, items, time.monotonic() + 30))

    assert all(isinstance(r, DsxaVerdict) for r in results)
    assert sorted(calls) == [
        ("conn-a", ["conn-a", "conn-a"], "key-a"),
        ("conn-b", ["conn-b", "conn-b"], "key-b"),
    ]


@pytest.mark.unit
def test_groups_are_per_connector_and_bounded_in_size() -> None:
    items = [item("conn-a", n) for n in range(5)] + [item("conn-b", 9)]
    groups, singles = scan.read_groups(items, group_size=2)
    assert groups == [[0, 1], [2, 3], [4], [5]] and singles == []
    groups, singles = scan.read_groups(items, group_size=1)  # 1: one read_file each
    assert groups == [] and singles == list(range(6))
