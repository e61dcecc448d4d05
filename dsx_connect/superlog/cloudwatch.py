"""AWS CloudWatch Logs destination (boto3 ``PutLogEvents``).

Each event is one log event: its compact SPEC §7 JSON as the message, its timestamp in milliseconds.
A call holds at most 10,000 events and 1,048,576 bytes (each event's UTF-8 size plus 26 bytes),
events of at most 256 KiB (26 bytes included), spanning at most 24 hours, in chronological order.
With ``create`` the group and stream are created when missing; credentials come from boto3's chain
(environment, profile, instance or task role).

Errors: throttling, service, credential and network errors retry (boto3's own retries are capped
at two attempts, the forwarder's backoff does the rest); ``InvalidParameterException`` refuses the
events as such. Events older than 14 days or over 2 hours ahead are accepted but discarded by the
service, and counted as rejected.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import timedelta
from typing import Any

from dsx_connect.superlog.config import CloudWatchSettings
from dsx_connect.superlog.events import compact
from dsx_connect.superlog.sink import Record, Sink
from shared.errors import PermanentError, RetryableError

MAX_EVENTS = 10_000
MAX_BATCH_BYTES = 1_048_576
EVENT_OVERHEAD_BYTES = 26
MAX_EVENT_BYTES = 256 * 1024
PERMANENT_CODES = frozenset({"InvalidParameterException", "DataAlreadyAcceptedException"})


class CloudWatchSink(Sink):
    name = "cloudwatch"
    max_records = MAX_EVENTS
    max_bytes = MAX_BATCH_BYTES
    overhead_bytes = EVENT_OVERHEAD_BYTES
    max_record_bytes = MAX_EVENT_BYTES
    max_span = timedelta(hours=24) - timedelta(seconds=1)

    def __init__(self, settings: CloudWatchSettings) -> None:
        assert settings.log_group
        self.settings = settings
        self.group = settings.log_group
        self.stream = settings.log_stream
        self._client: Any = None

    def encode(self, event: dict[str, Any]) -> Record:
        message = compact(event)
        return self.record(message, len(message.encode("utf-8")), event)

    def client(self) -> Any:
        if self._client is None:
            import boto3
            from botocore.config import Config

            s = self.settings
            self._client = boto3.session.Session().client(
                "logs",
                region_name=s.region,
                endpoint_url=s.endpoint_url,
                config=Config(
                    connect_timeout=s.timeout_s,
                    read_timeout=s.timeout_s,
                    retries={"max_attempts": 2, "mode": "standard"},
                ),
            )
        return self._client

    def send(self, records: Sequence[Record]) -> int:
        events = [
            {"timestamp": int(r.time.timestamp() * 1000), "message": r.payload}
            for r in sorted(records, key=lambda r: r.time)
        ]
        try:
            try:
                answer = self._put(events)
            except Exception as exc:
                if _code(exc) != "ResourceNotFoundException" or not self.settings.create:
                    raise
                self._create()
                answer = self._put(events)
        except Exception as exc:
            raise _error(exc) from exc
        return _discarded(answer.get("rejectedLogEventsInfo") or {}, len(events))

    def _put(self, events: list[dict[str, Any]]) -> dict[str, Any]:
        return dict(
            self.client().put_log_events(logGroupName=self.group, logStreamName=self.stream, logEvents=events)
        )

    def _create(self) -> None:
        """Create the group and the stream, either of which may already exist."""
        client = self.client()
        for call, kwargs in (
            (client.create_log_group, {"logGroupName": self.group}),
            (client.create_log_stream, {"logGroupName": self.group, "logStreamName": self.stream}),
        ):
            try:
                call(**kwargs)
            except Exception as exc:
                if _code(exc) != "ResourceAlreadyExistsException":
                    raise

    def close(self) -> None:
        client, self._client = self._client, None
        if client is not None:
            client.close()


def _code(exc: Exception) -> str:
    response = getattr(exc, "response", None)
    return str((response or {}).get("Error", {}).get("Code", "")) if isinstance(response, dict) else ""


def _error(exc: Exception) -> Exception:
    code = _code(exc)
    message = f"cloudwatch: {code or type(exc).__name__}: {exc}"
    if code in PERMANENT_CODES:
        return PermanentError(message)
    return RetryableError(message)


def _discarded(info: dict[str, Any], total: int) -> int:
    """Events the service accepted but discarded (too old, too new or past retention)."""
    head = max(int(info.get("tooOldLogEventEndIndex", -1)), int(info.get("expiredLogEventEndIndex", -1)))
    tail = info.get("tooNewLogEventStartIndex")
    return (head + 1 if head >= 0 else 0) + (total - int(tail) if tail is not None else 0)
