"""A webhook receiver as an operator would write one: it verifies every call with the Standard Webhooks
reference library (``standardwebhooks``, not our code) and records what it accepted.

Run under uvicorn by :func:`running_receiver`; ``WEBHOOK_SECRET`` is the secret it verifies with.
``GET /_received`` lists the accepted messages, ``/_refused`` the calls whose signature failed.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from standardwebhooks.webhooks import Webhook, WebhookVerificationError

from tests.support.procs import ServiceProcess, base_env, free_port, uvicorn_argv

app = FastAPI()
received: list[dict[str, Any]] = []
refused: list[str] = []


@app.get("/_alive")
def alive() -> dict[str, str]:
    return {"status": "ok"}


@app.get("/_received")
def read_received() -> list[dict[str, Any]]:
    return received


@app.get("/_refused")
def read_refused() -> list[str]:
    return refused


@app.post("/hook")
async def hook(request: Request) -> JSONResponse:
    body = await request.body()
    try:
        Webhook(os.environ["WEBHOOK_SECRET"]).verify(body, dict(request.headers))
    except WebhookVerificationError as exc:
        refused.append(str(exc))
        return JSONResponse({"error": "bad signature"}, status_code=401)
    received.append({"id": request.headers["webhook-id"], "message": json.loads(body)})
    return JSONResponse({"status": "ok"})


@dataclass
class Receiver:
    url: str  # the webhook URL
    base: str
    process: ServiceProcess

    def received(self) -> list[dict[str, Any]]:
        return httpx.get(f"{self.base}/_received", timeout=5).json()  # type: ignore[no-any-return]

    def refused(self) -> list[str]:
        return httpx.get(f"{self.base}/_refused", timeout=5).json()  # type: ignore[no-any-return]

    def start(self) -> None:
        self.process.start().wait_healthy(f"{self.base}/_alive")

    def stop(self) -> None:
        self.process.stop()


@contextmanager
def running_receiver(secret: str, log_dir: Path, port: int = 0) -> Iterator[Receiver]:
    """The receiver on ``port`` (a free one by default), stopped at the end."""
    port = port or free_port()
    argv = uvicorn_argv("tests.support.webhook_receiver:app", port)
    process = ServiceProcess(f"webhook-receiver-{port}", argv, base_env(WEBHOOK_SECRET=secret), log_dir)
    base = f"http://127.0.0.1:{port}"
    receiver = Receiver(f"{base}/hook", base, process)
    receiver.start()
    try:
        yield receiver
    finally:
        receiver.stop()
