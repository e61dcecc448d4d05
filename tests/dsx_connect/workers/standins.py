"""Stand-ins for the scan and action steps' tests: a connector that follows the contract of
shared/item_version.py to the letter, a worker context on a real Redis, and a Dispatch that records
what a step sends on."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import httpx
import redis
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response

from dsx_connect.settings import Settings
from dsx_connect.state.breaker import ScannerBreaker
from dsx_connect.state.connectors import ConnectorRegistry
from dsx_connect.state.dead_letters import DeadLetterStore
from dsx_connect.state.jobs import JobStore
from dsx_connect.state.results import ResultStore
from dsx_connect.workers.context import WorkerContext
from dsx_connect.workers.hot_path import ScanConfig
from dsx_connect.workers.outcome import ItemOutcome
from dsx_connect.workers.scan import Dispatch
from shared.item_version import ERROR_ITEM_CHANGED, ERROR_NOT_FOUND, ITEM_VERSION_HEADER
from shared.models import ScanTask


@dataclass
class Storage:
    """What the stand-in connector holds: location -> (bytes, version); and what it was asked."""

    items: dict[str, tuple[bytes, str]] = field(default_factory=dict)
    actions: list[dict[str, Any]] = field(default_factory=list)
    deleted: list[str] = field(default_factory=list)
    unavailable: int = 0  # item_action answers 503 this many times first


def contract_connector(storage: Storage) -> FastAPI:
    app = FastAPI()

    @app.post("/c/read_file")
    async def read_file(request: Request) -> Response:
        location = (await request.json())["location"]
        if location not in storage.items:
            return JSONResponse({"status": "error", "error": ERROR_NOT_FOUND}, status_code=404)
        data, version = storage.items[location]
        return Response(data, media_type="application/octet-stream", headers={ITEM_VERSION_HEADER: version})

    @app.put("/c/item_action")
    async def item_action(request: Request) -> Response:
        body = await request.json()
        storage.actions.append(body)
        if storage.unavailable > 0:
            storage.unavailable -= 1
            return JSONResponse({"status": "error", "message": "busy"}, status_code=503)
        location = body["location"]
        if location not in storage.items:
            return JSONResponse({"status": "error", "error": ERROR_NOT_FOUND, "message": "gone"}, 404)
        wanted = body.get("item_version")
        if wanted is not None and storage.items[location][1] != wanted:
            return JSONResponse({"status": "error", "error": ERROR_ITEM_CHANGED, "message": "changed"}, 412)
        del storage.items[location]
        storage.deleted.append(location)
        return JSONResponse({"status": "success", "item_action": "delete", "message": "deleted"})

    return app


def context(client: redis.Redis, settings: Settings) -> WorkerContext:
    return WorkerContext(
        settings=settings,
        registry=ConnectorRegistry(client, 180),
        jobs=JobStore(client),
        results=ResultStore(client, 1000),
        http=httpx.Client(timeout=5),
        scan_config=ScanConfig(
            scan_url="http://127.0.0.1:9/scan/binary/v2",
            auth_token=None,
            protected_entity=1,
            scanner_timeout_s=5,
            connector_timeout_s=5,
            connect_timeout_s=2,
            max_file_size_bytes=1 << 30,
        ),
        breaker=ScannerBreaker(client, 3, 1, 2),
        dead_letters=DeadLetterStore(client, 3600),
        client=client,
    )


@dataclass
class Sent:
    stored: list[ItemOutcome] = field(default_factory=list)
    rescanned: list[ScanTask] = field(default_factory=list)
    requeued: list[ItemOutcome] = field(default_factory=list)

    def dispatch(self) -> Dispatch:
        return Dispatch(
            rescan=lambda tasks, _delay: self.rescanned.extend(tasks),
            act=lambda _items: None,
            store=self.stored.extend,
        )
