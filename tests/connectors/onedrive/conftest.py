"""Fixtures of the OneDrive connector tests: the fake Graph, and the contract's store over it."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from connectors.onedrive.connector import OneDriveConnector
from connectors.onedrive.settings import OneDriveSettings
from tests.support.cloud_contract import core  # noqa: F401  (a fixture)
from tests.support.fake_graph import FakeGraph, fake_graph_server
from tests.support.graph_store import GraphStore


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for key in list(os.environ):
        if key.startswith(("DSXCONNECTOR_", "DSXCONNECT_", "SP_")):
            monkeypatch.delenv(key)


class OneDriveStore(GraphStore):
    package, name = "onedrive", "onedrive-connector"

    def make(self, **settings: Any) -> OneDriveConnector:
        return OneDriveConnector(OneDriveSettings(**settings))


@pytest.fixture(scope="session")
def fake_graph(logs_dir: Path) -> Iterator[FakeGraph]:
    with fake_graph_server(logs_dir) as fake:
        yield fake


@pytest.fixture(scope="session")
def store(fake_graph: FakeGraph) -> OneDriveStore:
    return OneDriveStore(fake_graph)
