"""A tiny real core for connector tests: the SPEC §4 routes a connector calls, recording what it gets.

It runs under uvicorn in a thread on a free port (:func:`running_core`), so the connector under
test talks real HTTP to it while the test reads the records directly.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import pytest
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

from shared.models import ScanRequest, ScanRequestBatch
from tests.support.threaded_server import serving

API = "/dsx-connect/api/v1"


@dataclass
class FakeCore:
    """Recorded calls and knobs; every list is appended under ``lock``."""

    url: str = ""
    lock: threading.Lock = field(default_factory=threading.Lock)
    registrations: list[tuple[int, dict[str, Any], float]] = field(default_factory=list)
    unregistered: list[str] = field(default_factory=list)
    batches: list[list[dict[str, Any]]] = field(default_factory=list)
    singles: list[dict[str, Any]] = field(default_factory=list)
    enqueue_done: dict[str, int] = field(default_factory=dict)
    enumeration_errors: dict[str, str] = field(default_factory=dict)
    flags: dict[str, dict[str, str]] = field(default_factory=dict)
    flag_reads: dict[str, int] = field(default_factory=dict)
    workers: dict[str, Any] = field(
        default_factory=lambda: {
            "scan_request_batch_enabled": True,
            "scan_request_batch_default_size": 10,
            "scan_request_batch_max_size": 100,
        }
    )
    #: answer 503 to the next N batch submissions
    fail_batches: int = 0
    #: answer 429 (too many items in flight, SPEC §5) to batch submissions while set; how many were
    busy: bool = False
    busy_answers: int = 0
    #: answer 404 "not registered" to every submission until the connector registers again (as
    #: the core does once a registration's heartbeat TTL has run out)
    forgotten: bool = False
    #: refuse (422) batches and single requests holding a location starting with this
    reject_prefix: str | None = None
    #: called (in the server thread) after each accepted batch, with the batch
    on_batch: Callable[[list[dict[str, Any]]], None] | None = None
    #: seconds each batch submission takes to answer (a busy core), and the most seen at once
    batch_answer_s: float = 0.0
    batches_at_once: int = 0
    #: with ``batch_answer_s``: answer as soon as this many batches were seen at once (0: wait it out)
    answer_at_once: int = 0
    _enough_at_once: asyncio.Event | None = None
    _batches_now: int = 0

    @property
    def requests(self) -> list[dict[str, Any]]:
        """Every accepted scan request, batches flattened, in arrival order."""
        with self.lock:
            return [r for batch in self.batches for r in batch] + list(self.singles)

    def in_job_order(self) -> list[dict[str, Any]]:
        """The batches' requests by ``job_item_id`` (batches in flight together may arrive in any order)."""
        return sorted(self.requests, key=lambda r: int(r["job_item_id"]))

    def locations(self, job_id: str | None = "any") -> list[str]:
        return sorted(r["location"] for r in self.requests if job_id == "any" or r["scan_job_id"] == job_id)

    def registration_codes(self) -> list[int]:
        with self.lock:
            return [code for code, _, _ in self.registrations]

    def build_app(self) -> FastAPI:
        app = FastAPI()
        known: set[str] = set()

        @app.post(f"{API}/connectors/register")
        async def register(request: Request) -> JSONResponse:
            body = await request.json()
            with self.lock:
                code = 200 if body["uuid"] in known else 201
                known.add(body["uuid"])
                self.forgotten = False
                self.registrations.append((code, body, time.monotonic()))
            return JSONResponse({"status": "success", "message": "registered", "id": body["uuid"]}, code)

        @app.delete(f"{API}/connectors/unregister/{{uuid}}")
        async def unregister(uuid: str) -> dict[str, str]:
            with self.lock:
                self.unregistered.append(uuid)
            return {"status": "success", "message": "unregistered"}

        @app.post(f"{API}/scan/request_batch")
        async def request_batch(request: Request) -> JSONResponse:
            with self.lock:
                self._batches_now += 1
                self.batches_at_once = max(self.batches_at_once, self._batches_now)
            try:
                if self.answer_at_once:
                    enough = self._enough_at_once = (
                        self._enough_at_once or asyncio.Event()
                    )  # the server's loop
                    if self.batches_at_once >= self.answer_at_once:
                        enough.set()
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(enough.wait(), self.batch_answer_s)
                elif self.batch_answer_s:
                    await asyncio.sleep(self.batch_answer_s)
                return await accept_batch(request)
            finally:
                with self.lock:
                    self._batches_now -= 1

        async def accept_batch(request: Request) -> JSONResponse:
            with self.lock:
                if self.forgotten:
                    return not_registered()
                if self.fail_batches > 0:
                    self.fail_batches -= 1
                    return JSONResponse({"status": "error", "message": "blip"}, 503)
                if self.busy:
                    self.busy_answers += 1
                    message = {"status": "error", "message": "too many items in flight"}
                    return JSONResponse(message, 429, headers={"Retry-After": "0"})
            batch = ScanRequestBatch.model_validate(await request.json())
            if self._rejects(batch.requests):
                return JSONResponse({"status": "error", "message": "bad location"}, 422)
            raw = (await request.json())["requests"]
            with self.lock:
                self.batches.append(raw)
            if self.on_batch is not None:
                self.on_batch(raw)
            ids = [f"req-{i}" for i in range(len(raw))]
            return JSONResponse({"status": "success", "message": "queued", "ids": ids}, 202)

        @app.post(f"{API}/scan/request")
        async def request_single(request: Request) -> JSONResponse:
            if self.forgotten:
                return not_registered()
            raw = await request.json()
            if self._rejects([ScanRequest.model_validate(raw)]):
                return JSONResponse({"status": "error", "message": "bad location"}, 422)
            with self.lock:
                self.singles.append(raw)
            return JSONResponse({"status": "success", "message": "queued", "id": "req"}, 202)

        @app.post(f"{API}/scan/jobs/{{job_id}}/enqueue_done")
        async def enqueue_done(job_id: str, request: Request) -> dict[str, str]:
            body = await request.json()
            with self.lock:
                self.enqueue_done[job_id] = body["enqueued_total"]
                if body.get("error"):
                    self.enumeration_errors[job_id] = body["error"]
            return {"status": "success", "message": "noted"}

        @app.get(f"{API}/scan/jobs/{{job_id}}/raw")
        async def job_raw(job_id: str) -> dict[str, Any]:
            with self.lock:
                self.flag_reads[job_id] = self.flag_reads.get(job_id, 0) + 1
                return {"job_id": job_id, "data": dict(self.flags.get(job_id, {}))}

        @app.get(f"{API}/config")
        async def config() -> dict[str, Any]:
            with self.lock:
                return {"workers": dict(self.workers), "scanner": {"auth_token": "***"}}

        return app

    def _rejects(self, requests: list[ScanRequest]) -> bool:
        return self.reject_prefix is not None and any(
            r.location.startswith(self.reject_prefix) for r in requests
        )


def not_registered() -> JSONResponse:
    return JSONResponse({"status": "error", "message": "connector is not registered"}, 404)


@contextmanager
def running_core(core: FakeCore | None = None, port: int | None = None) -> Iterator[FakeCore]:
    """Serve ``core`` under uvicorn in a thread until the block ends."""
    core = core or FakeCore()
    with serving(core.build_app(), port=port, name="fake core") as url:
        core.url = url
        yield core


@pytest.fixture
def fake_core() -> Iterator[FakeCore]:
    """A running fake core, fresh for each test."""
    with running_core() as core:
        yield core
