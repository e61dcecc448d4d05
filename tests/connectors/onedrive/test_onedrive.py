"""The OneDrive connector finds its drive by user, against the fake Graph."""

from __future__ import annotations

import uuid

import pytest

from tests.support.fake_graph import FakeGraph
from tests.support.graph_store import GraphStore

pytestmark = [pytest.mark.integration, pytest.mark.anyio]


async def test_the_drive_of_a_user_is_found_by_upn(store: GraphStore, fake_graph: FakeGraph) -> None:
    user = f"ana-{uuid.uuid4().hex[:6]}@contoso.com"
    fake_graph.add_drive(f"b!{user}", "OneDrive", user=user)
    fake_graph.put(f"b!{user}", "Desktop/todo.txt", b"x")
    connector = store.make(**store.credentials(), od_user=user.upper(), auth={"enabled": False})
    try:
        assert [item.metainfo async for item in connector.enumerate()] == ["OneDrive/Desktop/todo.txt"]
        nobody = store.make(**store.credentials(), od_user="nobody@contoso.com", auth={"enabled": False})
        with pytest.raises(Exception, match=r"nobody@contoso\.com"):
            await nobody.check()
        await nobody.aclose()
    finally:
        await connector.aclose()
