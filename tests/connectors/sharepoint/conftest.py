"""Fixtures of the SharePoint connector tests: the fake Graph, and the contract's store over it."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import anyio
import pytest

from connectors.graph.drive import GraphDriveConnector
from connectors.sharepoint.connector import SharePointConnector
from connectors.sharepoint.settings import SharePointSettings
from tests.support.cloud_contract import core  # noqa: F401  (a fixture)
from tests.support.fake_graph import FakeGraph, fake_graph_server
from tests.support.graph_store import GraphStore


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for key in list(os.environ):
        if key.startswith(("DSXCONNECTOR_", "DSXCONNECT_", "SP_")):
            monkeypatch.delenv(key)


class SharePointStore(GraphStore):
    package, name = "sharepoint", "sharepoint-connector"

    def make(self, **settings: Any) -> SharePointConnector:
        return SharePointConnector(SharePointSettings(**settings))


@pytest.fixture(scope="session")
def fake_graph(logs_dir: Path) -> Iterator[FakeGraph]:
    with fake_graph_server(logs_dir) as fake:
        yield fake


@pytest.fixture(scope="session")
def store(fake_graph: FakeGraph) -> SharePointStore:
    return SharePointStore(fake_graph)


Make = Callable[..., GraphDriveConnector[Any]]


@pytest.fixture
def make(store: GraphStore) -> Iterator[Make]:
    """Connectors on the fake Graph (auth off), closed after the test."""
    made: list[GraphDriveConnector[Any]] = []

    def build(**settings: Any) -> GraphDriveConnector[Any]:
        made.append(store.connector(**{"auth": {"enabled": False}, **settings}))
        return made[-1]

    yield build
    for connector in made:
        anyio.run(connector.aclose)
