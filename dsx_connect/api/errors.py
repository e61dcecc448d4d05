"""Error answers: always JSON with ``status`` and a ``message`` naming the problem; never a stack trace."""

from __future__ import annotations

import logging
from typing import Any

import redis.exceptions
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from shared.logging import request_id_var

log = logging.getLogger(__name__)


def _where(loc: tuple[Any, ...] | list[Any]) -> str:
    return ".".join(str(p) for p in loc if p != "body") or "body"


def install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(RequestValidationError)
    async def invalid_request(_: Request, exc: RequestValidationError) -> JSONResponse:
        errors = [
            {"loc": list(e.get("loc", ())), "msg": e.get("msg", ""), "type": e.get("type", "")}
            for e in exc.errors()
        ]
        summary = "; ".join(f"{_where(e['loc'])}: {e['msg']}" for e in errors[:5])
        return JSONResponse(
            {"status": "error", "message": f"invalid request: {summary}", "detail": errors}, status_code=422
        )

    @app.exception_handler(StarletteHTTPException)
    async def http_error(_: Request, exc: StarletteHTTPException) -> JSONResponse:
        body = {"status": "error", "message": str(exc.detail), "detail": exc.detail}
        if reason := getattr(exc, "reason", None):  # e.g. auth.access.AccessDenied
            body["error"] = reason
        return JSONResponse(body, status_code=exc.status_code, headers=getattr(exc, "headers", None))

    @app.exception_handler(redis.exceptions.ConnectionError)
    @app.exception_handler(redis.exceptions.TimeoutError)
    async def redis_down(_: Request, exc: Exception) -> JSONResponse:
        log.error("redis unavailable: %s", exc)
        return JSONResponse(
            {"status": "error", "message": "Redis is unavailable; retry later"}, status_code=503
        )

    @app.exception_handler(Exception)
    async def unexpected(_: Request, exc: Exception) -> JSONResponse:
        log.exception("unhandled error")
        body = {"status": "error", "message": "internal error", "request_id": request_id_var.get()}
        return JSONResponse(body, status_code=500)
