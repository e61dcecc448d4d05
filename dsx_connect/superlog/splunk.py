"""Splunk HTTP Event Collector destination.

One POST per batch to ``{hec_url}/services/collector/event`` with ``Authorization: Splunk <token>``;
the body is the batch's event envelopes one after another, one per line (HEC batch format):
``{"time": <epoch s>, "host": …, "source": …, "sourcetype": …, "index": …, "event": {SPEC §7 event}}``.
A batch stays under ``max_batch_bytes`` (HEC's ``max_content_length``).

Answers: 200 delivered; 413, and 400 whose HEC ``code`` is about the events (5 no data, 6 invalid data
format, 12 event field required, 13 event field blank, 15 error in handling indexed fields), refused as
such. Every other 400 concerns the destination, not an event (7 incorrect index, 10 data channel
missing, 11 invalid data channel, 14 ACK disabled, 16 query-string authorization off, an unknown or
missing code): retried like 401/403 (codes 1-4: the token), 429, 5xx (8, 9, 18-20: busy or unhealthy)
and network errors, so that a fixed index or token loses no event.
"""

from __future__ import annotations

import json
import socket
from collections.abc import Sequence
from typing import Any

import httpx

from dsx_connect.superlog.config import SplunkSettings
from dsx_connect.superlog.http import classify, json_body, post, tls_verify
from dsx_connect.superlog.sink import Record, Sink

HEC_EVENT_PATH = "/services/collector/event"

# HEC status codes (Splunk's "Troubleshoot HTTP Event Collector" table) that blame the events sent
HEC_EVENT_CODES = frozenset({5, 6, 12, 13, 15})
# What to check for the codes that blame the configuration
HEC_HINTS = {
    1: "the HEC token is disabled",
    2: "DSXCONNECT_SUPERLOG__SPLUNK__TOKEN",
    3: "DSXCONNECT_SUPERLOG__SPLUNK__TOKEN",
    4: "DSXCONNECT_SUPERLOG__SPLUNK__TOKEN",
    7: "DSXCONNECT_SUPERLOG__SPLUNK__INDEX and the token's allowed indexes",
    10: "the token has indexer acknowledgement on: set DSXCONNECT_SUPERLOG__SPLUNK__CHANNEL or turn it off",
    11: "DSXCONNECT_SUPERLOG__SPLUNK__CHANNEL (a GUID)",
    14: "the token has indexer acknowledgement off: unset DSXCONNECT_SUPERLOG__SPLUNK__CHANNEL",
    16: "DSXCONNECT_SUPERLOG__SPLUNK__HEC_URL (a query-string token is not enabled)",
}


def hec_code(response: httpx.Response) -> int | None:
    """The ``code`` of a HEC answer (``{"text": "Incorrect index", "code": 7}``), if any."""
    code = json_body(response).get("code")
    return code if isinstance(code, int) and not isinstance(code, bool) else None


def hec_events_at_fault(response: httpx.Response) -> bool:
    """A 400 refuses the events sent only for the data codes; any other concerns the destination."""
    return hec_code(response) in HEC_EVENT_CODES


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
        if response.status_code == 200:
            return 0
        hint = HEC_HINTS.get(hec_code(response) or -1)
        classify(
            response,
            "splunk",
            ok=(200,),
            events_at_fault=hec_events_at_fault,
            hint=f" (check {hint})" if hint else "",
        )
        return 0

    def close(self) -> None:
        self.http.close()
