"""Error answers: always JSON with ``status`` and a ``message`` naming the problem; never a stack trace."""

from __future__ import annotations

import logging
from typing import Any

import redis.exceptions
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from kombu.exceptions import OperationalError
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
    @app.exception_handler(redis.exceptions.ReadOnlyError)  # a failover in progress
    @app.exception_handler(redis.exceptions.BusyLoadingError)  # a restarted Redis loading its AOF
    @app.exception_handler(redis.exceptions.MasterDownError)
    @app.exception_handler(OperationalError)  # the broker (the same Redis) refused a publish
    async def redis_down(_: Request, exc: Exception) -> JSONResponse:
        log.error("redis unavailable: %s", exc)
        return JSONResponse(
            {"status": "error", "message": "Redis is unavailable; retry later"},
            status_code=503,
            headers={"Retry-After": "2"},
        )

    @app.exception_handler(redis.exceptions.OutOfMemoryError)
    async def redis_full(_: Request, exc: Exception) -> JSONResponse:
        # maxmemory with noeviction: Redis refuses writes rather than drop data; nothing was accepted
        log.error("redis refused a write (maxmemory reached): %s", exc)
        return JSONResponse(
            {"status": "error", "message": "Redis is full (maxmemory reached); retry later"},
            status_code=503,
            headers={"Retry-After": "10"},
        )

    @app.exception_handler(Exception)
    async def unexpected(_: Request, exc: Exception) -> JSONResponse:
        # a last resort: api.middleware.RequestContextMiddleware answers an unhandled error inside the
        # request's context (request id, security headers); Starlette runs this one outside it
        log.exception("unhandled error")
        return internal_error(request_id_var.get())


def internal_error(request_id: str | None) -> JSONResponse:
    """The answer to an unhandled error: 500 naming the request id, never a stack trace."""
    return JSONResponse(
        {"status": "error", "message": "internal error", "request_id": request_id}, status_code=500
    )
