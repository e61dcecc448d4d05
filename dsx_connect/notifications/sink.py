"""One webhook as a feed destination: each event POSTed alone, signed the Standard Webhooks way.

Headers (https://github.com/standard-webhooks/standard-webhooks/blob/main/spec/standard-webhooks.md):
``webhook-id`` (:func:`message_id`: one stored outcome of a scan request, the same on every retry of
its delivery, so a receiver can drop duplicates, and another for a later outcome that replaced it),
``webhook-timestamp`` (Unix seconds of this attempt) and ``webhook-signature`` (``v1,`` + base64
HMAC-SHA256 over ``id.timestamp.body`` keyed with the base64-decoded secret).
The body is ``{"type": "scan_result", "timestamp": …, "data": <the SPEC §7 event>}``; the event
carries the request id (``data.scan_request_id``).
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


# what ``DSXCONNECT_SUPERLOG__REDACT__*`` may hash or drop before an event is encoded: left out of the
# outcome's digest, so that a change of those settings does not change the id of a pending event
_REDACTABLE = frozenset({"location", "metainfo"})


def message_id(event: dict[str, Any]) -> str:
    """The ``webhook-id`` of ``event``: its scan request id, ``.``, and 16 hex digits of SHA-256 over the
    stored outcome (the event, keys sorted, without the redactable fields).

    A failed result (Not Scanned, a failed action) replaced by a requeued attempt's outcome is fed out
    again for the same request: the results script stores a replacement only when its event differs
    (its timestamp, verdict, scan, action or error), so the new outcome gets a new id and a receiver
    dropping duplicates keeps it. Every delivery of one stored outcome (a retry, a notification step
    run twice) encodes the same event, hence the same id."""
    outcome = {key: value for key, value in event.items() if key not in _REDACTABLE}
    canonical = json.dumps(outcome, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    digest = hashlib.sha256(canonical.encode()).hexdigest()
    request_id = event.get("scan_request_id")
    return f"{request_id}.{digest[:16]}" if request_id else f"msg_{digest[:32]}"


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
        return self.record((message_id(event), body), len(body), event)

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
