"""Who may post to a Graph connector's ``/webhook/event`` (``shared.connector.webhook_auth``).

Graph cannot sign DSX-HMAC; what proves a notification is the subscription's ``clientState``, a
secret only Graph and the connector know (``DSXCONNECTOR_GRAPH_CLIENT_STATE``): every entry of the
posted ``value`` must carry it. The subscription's validation request (``?validationToken=``, no
body) is let through: its answer only echoes the token back.
"""

from __future__ import annotations

import hmac
import json

from fastapi import Request
from pydantic import SecretStr

from shared.connector.webhook_auth import WebhookRefused


class ClientStateVerifier:
    """Refuses a notification whose entries do not all carry our ``clientState``."""

    def __init__(self, client_state: SecretStr) -> None:
        self._secret = client_state.get_secret_value().encode()

    async def verify(self, request: Request, body: bytes) -> None:
        if "validationToken" in request.query_params and not body.strip():
            return  # the subscription handshake: Graph posts no notification with it
        try:
            event = json.loads(body) if body.strip() else None
        except ValueError:
            raise WebhookRefused("not a Graph notification (the body is not JSON)") from None
        entries = event.get("value") if isinstance(event, dict) else None
        if not isinstance(entries, list) or not entries:
            raise WebhookRefused("not a Graph notification: 'value' is missing")
        for entry in entries:
            state = entry.get("clientState") if isinstance(entry, dict) else None
            if not isinstance(state, str) or not hmac.compare_digest(state.encode(), self._secret):
                raise WebhookRefused("clientState does not match")
