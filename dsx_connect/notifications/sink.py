"""One webhook as a feed destination: each event POSTed alone, signed the Standard Webhooks way.

Headers (https://github.com/standard-webhooks/standard-webhooks/blob/main/spec/standard-webhooks.md):
``webhook-id`` (the event's scan request id: the same on every retry, so a receiver can drop
duplicates), ``webhook-timestamp`` (Unix seconds of this attempt) and ``webhook-signature``
(``v1,`` + base64 HMAC-SHA256 over ``id.timestamp.body`` keyed with the base64-decoded secret).
The body is ``{"type": "scan_result", "timestamp": …, "data": <the SPEC §7 event>}``.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
from collections.abc import Sequence
from typing import Any

import httpx

from dsx_connect.auth.urls import AddressPolicy, guarded_transport
from dsx_connect.notifications.config import NotificationsSettings, WebhookSettings, secret_key
from dsx_connect.superlog.http import classify, post, tls_verify
from dsx_connect.superlog.sink import Record, Sink
from dsx_connect.version import __version__


def signature(key: bytes, msg_id: str, timestamp: int, body: bytes) -> str:
    """The ``webhook-signature`` value: ``v1,`` + base64 HMAC-SHA256 of ``msg_id.timestamp.body``."""
    signed = f"{msg_id}.{timestamp}.".encode() + body
    return "v1," + base64.b64encode(hmac.new(key, signed, hashlib.sha256).digest()).decode()


class WebhookSink(Sink):
    """POSTs one signed event per call to one webhook URL."""

    max_records = 1
    max_bytes = 4_000_000
    max_record_bytes = 1_000_000

    def __init__(self, hook: WebhookSettings, settings: NotificationsSettings) -> None:
        self.name = hook.destination  # type: ignore[misc]  # one destination per webhook
        self.hook = hook
        self.key = secret_key(hook.secret.get_secret_value())
        verify = tls_verify(settings.ca_bundle, settings.verify_tls)
        # every connection's resolved address is checked as for connectors (no DNS rebinding)
        policy = AddressPolicy(allow_link_local=settings.allow_link_local)
        self.client = httpx.Client(
            timeout=settings.timeout_s,
            verify=verify,
            transport=guarded_transport(policy, verify=verify),
            follow_redirects=False,  # a redirect could lead anywhere: the URL was checked, its target not
            headers={"User-Agent": f"dsx-connect/{__version__}"},
        )

    def encode(self, event: dict[str, Any]) -> Record:
        message = {"type": "scan_result", "timestamp": event.get("timestamp"), "data": event}
        body = json.dumps(message, separators=(",", ":")).encode()
        msg_id = str(event.get("scan_request_id") or hashlib.sha256(body).hexdigest()[:32])
        return self.record((msg_id, body), len(body), event)

    def send(self, records: Sequence[Record]) -> int:
        for record in records:
            msg_id, body = record.payload
            now = int(time.time())
            headers = {
                "Content-Type": "application/json",
                "webhook-id": msg_id,
                "webhook-timestamp": str(now),
                "webhook-signature": signature(self.key, msg_id, now, body),
            }
            who = f"webhook {self.hook.shown_url}"
            classify(post(self.client, self.hook.url, body, headers, who), who, ok=range(200, 300))
        return 0

    def close(self) -> None:
        self.client.close()
