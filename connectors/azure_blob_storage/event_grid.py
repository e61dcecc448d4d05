"""Event Grid authentication for the Azure Blob Storage connector's webhook.

Event Grid proves nothing by itself: its subscription validation handshake only shows that whoever
created the subscription controls the endpoint. So every request, the handshakes included, must
carry the connector's shared secret ``DSXCONNECTOR_WEBHOOK__SECRET``: put it in the subscription's
endpoint URL as ``?secret=…`` (Event Grid keeps the query string), or send it as the
``X-DSX-Webhook-Secret`` header (a delivery property of the subscription). Compared in constant time.

Two handshakes are answered once the secret matches:

* Event Grid schema: a ``Microsoft.EventGrid.SubscriptionValidationEvent`` is answered
  ``{"validationResponse": <validationCode>}`` (in the connector's ``webhook``);
* CloudEvents 1.0 schema: ``OPTIONS`` with ``WebHook-Request-Origin`` is answered 200 with
  ``WebHook-Allowed-Origin`` (the same origin) and ``WebHook-Allowed-Rate: *`` (the CloudEvents
  HTTP webhook spec, "abuse protection").
"""

from __future__ import annotations

from fastapi import Request
from fastapi.responses import Response

from shared.connector.webhook_auth import SharedSecret, WebhookRefused, WebhookSettings


class EventGridVerifier(SharedSecret):
    """The shared secret in the query or header, plus the CloudEvents ``OPTIONS`` handshake."""

    def __init__(self, settings: WebhookSettings) -> None:
        super().__init__(settings, allow_query=True)

    async def preflight(self, request: Request) -> Response:
        origin = request.headers.get("webhook-request-origin", "").strip()
        if not origin or len(origin) > 255:
            raise WebhookRefused("CloudEvents handshake without WebHook-Request-Origin")
        return Response(
            status_code=200,
            headers={"WebHook-Allowed-Origin": origin, "WebHook-Allowed-Rate": "*", "Allow": "POST, OPTIONS"},
        )
