"""Splunk HTTP Event Collector destination.

One POST per batch to ``{hec_url}/services/collector/event`` with ``Authorization: Splunk <token>``;
the body is the batch's event envelopes one after another, one per line (HEC batch format):
``{"time": <epoch s>, "host": …, "source": …, "sourcetype": …, "index": …, "event": {SPEC §7 event}}``.
A batch stays under ``max_batch_bytes`` (HEC's ``max_content_length``).

Answers: 200 delivered; 400 (malformed event) and 413 refused as such; 401/403 (token), 429, 5xx
(503: server busy) and network errors are retried, as a fixed token must not lose events.
"""

from __future__ import annotations

import json
import socket
from collections.abc import Sequence
from typing import Any

import httpx

from dsx_connect.superlog.config import SplunkSettings
from dsx_connect.superlog.http import classify, post, tls_verify
from dsx_connect.superlog.sink import Record, Sink

HEC_EVENT_PATH = "/services/collector/event"


def hec_endpoint(url: str) -> str:
    """The event endpoint of ``url``: the HEC path is added when the URL names only the server."""
    base = url.rstrip("/")
    return base if "/services/collector" in base else base + HEC_EVENT_PATH


class SplunkSink(Sink):
    name = "splunk"

    def __init__(self, settings: SplunkSettings) -> None:
        assert settings.hec_url and settings.token  # checked at start (SuperlogSettings.resolve)
        self.settings = settings
        self.url = hec_endpoint(settings.hec_url)
        self.max_bytes = settings.max_batch_bytes
        self.max_record_bytes = settings.max_batch_bytes
        self.overhead_bytes = 1  # the newline between envelopes
        self.envelope: dict[str, Any] = {
            "host": settings.host or socket.gethostname(),
            "source": settings.source,
            "sourcetype": settings.sourcetype,
        }
        if settings.index:
            self.envelope["index"] = settings.index
        self.headers = {
            "Authorization": f"Splunk {settings.token.get_secret_value()}",
            "Content-Type": "application/json",
        }
        if settings.channel:
            self.headers["X-Splunk-Request-Channel"] = settings.channel
        verify = tls_verify(settings.ca_bundle, settings.verify_tls)
        self.http = httpx.Client(timeout=settings.timeout_s, verify=verify)

    def encode(self, event: dict[str, Any]) -> Record:
        when = self.record(None, 0, event).time
        envelope = {"time": round(when.timestamp(), 3), **self.envelope, "event": event}
        body = json.dumps(envelope, separators=(",", ":"), ensure_ascii=False).encode()
        return self.record(body, len(body), event)

    def send(self, records: Sequence[Record]) -> int:
        body = b"\n".join(r.payload for r in records)
        response = post(self.http, self.url, body, self.headers, "splunk")
        classify(response, "splunk", ok=(200,))
        return 0

    def close(self) -> None:
        self.http.close()
