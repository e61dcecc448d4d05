"""Structured logs: one JSON object per line, carrying the request and job id of the work."""

from __future__ import annotations

import contextvars
import json
import logging
import os
import sys
from datetime import UTC, datetime

from shared.redaction import RedactingFilter, redact

request_id_var: contextvars.ContextVar[str | None] = contextvars.ContextVar("request_id", default=None)
job_id_var: contextvars.ContextVar[str | None] = contextvars.ContextVar("job_id", default=None)

_RESERVED = set(logging.makeLogRecord({}).__dict__) | {"message", "asctime"}


class JsonFormatter(logging.Formatter):
    def __init__(self, service: str) -> None:
        super().__init__()
        self.service = service

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, object] = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "service": self.service,
            "logger": record.name,
            "msg": record.getMessage(),
        }
        if (rid := request_id_var.get()) is not None:
            entry["request_id"] = rid
        if (jid := job_id_var.get()) is not None:
            entry["job_id"] = jid
        for key, value in record.__dict__.items():
            if key not in _RESERVED and not key.startswith("_"):
                entry[key] = value
        if record.exc_info:
            entry["exc"] = self.formatException(record.exc_info)
        return redact(json.dumps(entry, default=str))  # extras and tracebacks too


def configure_logging(service: str, level: str | None = None) -> None:
    """Send every logger's records to stderr as JSON lines (idempotent)."""
    root = logging.getLogger()
    level_name = (level or os.environ.get("LOG_LEVEL") or "INFO").upper()
    root.setLevel(level_name)
    for handler in root.handlers:
        if getattr(handler, "_dsx", False):
            handler.setFormatter(JsonFormatter(service))
            return
    handler = logging.StreamHandler(sys.stderr)
    handler._dsx = True  # type: ignore[attr-defined]
    handler.setFormatter(JsonFormatter(service))
    handler.addFilter(RedactingFilter())  # no secret in any log line (SPEC §8)
    root.handlers = [handler]
    for noisy in ("httpx", "httpcore", "uvicorn.access", "watchfiles"):
        logging.getLogger(noisy).setLevel(max(logging.WARNING, root.level))
