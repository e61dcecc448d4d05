"""The core's requests to a connector (connector_requests, ConnectorClient): every route it calls is
one the connector framework serves, with that method, and each request is built one way."""

from __future__ import annotations

import json
from collections.abc import Callable, Generator

import httpx
import pytest
from fastapi import FastAPI, Request

from dsx_connect.connector_client import ConnectorClient
from dsx_connect.connector_requests import Route, item_action_body, read_files_body, route_url
from dsx_connect.workers.hot_path import connector_route
from dsx_connect.workers.outcome import ConnectorRef
from shared.connector.routes import connector_router, health_router
from shared.models import ItemActionType, RequestedAction, ScanTask

PREFIX = "/fs"
BASE = f"http://connector:8600{PREFIX}"
HOT_PATH_POSTS = {Route.READ_FILE, Route.READ_FILES}  # read by workers.hot_path, not ConnectorClient


async def _allow(_: Request) -> None:
    return None


def _served() -> set[tuple[str, str]]:
    """(method, path) of every route a connector built on shared/connector serves under PREFIX."""
    app = FastAPI()
    app.include_router(connector_router(PREFIX, _allow))
    app.include_router(health_router(), prefix=PREFIX)
    paths = app.openapi()["paths"]
    return {(method.upper(), path) for path, methods in paths.items() for method in methods}


Recorded = list[httpx.Request]


def _client(recorded: Recorded, url: str = BASE, auth: httpx.Auth | None = None) -> ConnectorClient:
    def answer(request: httpx.Request) -> httpx.Response:
        recorded.append(request)
        return httpx.Response(200, json={"status": "success"})

    return ConnectorClient(httpx.Client(transport=httpx.MockTransport(answer)), url, auth)


CALLS: list[Callable[[ConnectorClient], httpx.Response]] = [
    lambda c: c.estimate(),
    lambda c: c.full_scan("job-1"),
    lambda c: c.repo_check(5),
    lambda c: c.healthz(),
    lambda c: c.readyz(),
    lambda c: c.get_config(),
    lambda c: c.put_config({"filter": "*.pdf"}),
]


def test_every_route_the_core_calls_is_served_by_the_connector_framework() -> None:
    recorded: Recorded = []
    client = _client(recorded)
    for call in CALLS:
        call(client)
    called = {(r.method, r.url.path) for r in recorded}
    called |= {("POST", f"{PREFIX}/{route.value}") for route in HOT_PATH_POSTS}
    called.add(("PUT", f"{PREFIX}/{Route.ITEM_ACTION.value}"))  # asked by workers.actions._ask
    assert called <= _served(), called - _served()
    # every Route is called by one of them, so a new name is checked here too
    assert {path.rsplit("/", 1)[1] for _, path in called} == {r.value for r in Route}


@pytest.mark.parametrize("url", [BASE, BASE + "/"])
def test_routes_are_joined_one_way(url: str) -> None:
    assert route_url(url, Route.ITEM_ACTION) == f"{BASE}/item_action"
    _, signed_path = connector_route(url, Route.READ_FILE)
    assert signed_path == f"{PREFIX}/read_file"
    recorded: Recorded = []
    _client(recorded, url).estimate()
    assert str(recorded[0].url) == f"{BASE}/estimate"


def test_control_plane_requests() -> None:
    recorded: Recorded = []
    client = _client(recorded)
    client.full_scan("job-1", limit=10, batch=True, batch_size=50)
    client.full_scan("job-2")
    client.repo_check(3)
    client.put_config({"filter": "*.pdf"})
    scan, plain, repo, config = recorded
    assert (scan.method, dict(scan.url.params)) == (
        "POST",
        {"job_id": "job-1", "limit": "10", "batch": "true", "batch_size": "50"},
    )
    assert dict(plain.url.params) == {"job_id": "job-2"}
    assert dict(repo.url.params) == {"preview": "3"}
    assert (config.method, json.loads(config.content)) == ("PUT", {"filter": "*.pdf"})


def test_each_call_is_signed_with_the_connectors_auth_and_estimate_may_set_its_timeout() -> None:
    class Mark(httpx.Auth):
        def auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
            request.headers["Authorization"] = "DSX-HMAC test"
            yield request

    recorded: Recorded = []
    client = _client(recorded, auth=Mark())
    for call in CALLS:
        call(client)
    assert all(r.headers.get("Authorization") == "DSX-HMAC test" for r in recorded)
    client.estimate(timeout_s=10.0)
    assert recorded[-1].extensions["timeout"]["read"] == 10.0
    unsigned: Recorded = []
    _client(unsigned).healthz()
    assert "Authorization" not in unsigned[0].headers


def test_item_action_body_is_the_read_file_body_with_the_guard() -> None:
    task = ScanTask(id="r1", connector_uuid="c1", location="a.txt", metainfo="m", job_id="j1")
    connector = ConnectorRef(uuid="c1", name="fs", url=BASE)
    plain = item_action_body(task, connector, None)
    assert "requested_action" not in plain and "item_version" not in plain
    assert plain["location"] == "a.txt" and plain["connector_url"] == BASE and plain["scan_job_id"] == "j1"
    asked = task.model_copy(update={"requested_action": RequestedAction(type=ItemActionType.TAG)})
    guarded = item_action_body(asked, connector, "v7")
    assert guarded["item_version"] == "v7"
    assert guarded["requested_action"] == {"type": "tag", "destination": None, "tags": {}}


def test_read_files_body_lists_the_items_in_order() -> None:
    tasks = [
        ScanTask(id=f"r{i}", connector_uuid="c1", location=f"{i}.txt", metainfo=f"m{i}", job_id="j1")
        for i in range(3)
    ]
    assert json.loads(read_files_body(tasks)) == {
        "items": [{"location": f"{i}.txt", "metainfo": f"m{i}"} for i in range(3)]
    }
