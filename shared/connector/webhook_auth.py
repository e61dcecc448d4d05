"""Who may post to a connector's ``/webhook/event``: one verifier per storage, checked before parsing.

Storage services cannot sign DSX-HMAC, so each webhook is authenticated by what its source offers
(SPEC §8): an SNS message signature (``connectors.aws_s3.sns``), a Pub/Sub push OIDC token
(``connectors.google_cloud_storage.pubsub_auth``), Event Grid's handshake plus a shared secret
(``connectors.azure_blob_storage.event_grid``), and otherwise the shared secret of
:class:`SharedSecret` in the ``X-DSX-Webhook-Secret`` header.

A refused event answers 401 and is counted (:class:`WebhookGate`, shown on ``/readyz``).
``DSXCONNECTOR_WEBHOOK__VERIFY=false`` accepts unverified events (emulators, tests) and warns at
every start.

| variable | default | meaning |
| --- | --- | --- |
| ``WEBHOOK__SECRET`` | – | shared secret of the generic webhook and of Event Grid (redacted in ``/config``) |
| ``WEBHOOK__VERIFY`` | true | false: accept events without checking their sender (never in production) |
"""

from __future__ import annotations

import hmac
import logging
from typing import TYPE_CHECKING, Any, Protocol

from fastapi import Request
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel, Field, SecretStr

if TYPE_CHECKING:
    from shared.connector.base import Connector

log = logging.getLogger(__name__)

#: the header the generic webhook's shared secret travels in
SECRET_HEADER = "X-DSX-Webhook-Secret"
#: the query parameter a shared secret may travel in where the sender cannot set headers (Event Grid)
SECRET_QUERY = "secret"


class WebhookSettings(BaseModel):
    """``DSXCONNECTOR_WEBHOOK__*``: the shared secret, and the switch that turns checking off."""

    secret: SecretStr | None = Field(default=None, description="shared secret (generic route, Event Grid)")
    verify: bool = Field(default=True, description="false: accept unverified events (tests only)")


class WebhookRefused(Exception):
    """The event's sender could not be verified (answered 401 with ``reason``)."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class WebhookUnavailable(Exception):
    """The sender could not be checked for now (its certificate or keys are out of reach): answered
    503 with ``Retry-After``, so that the storage delivers the event again. SNS redelivers an HTTP
    notification only on a 5xx or no answer: a 401 there loses the event for good."""

    def __init__(self, reason: str, retry_after_s: int = 30) -> None:
        super().__init__(reason)
        self.reason = reason
        self.retry_after_s = retry_after_s


class WebhookVerifier(Protocol):
    """Checks one webhook request; raises :class:`WebhookRefused` when its sender is not proven."""

    async def verify(self, request: Request, body: bytes) -> None: ...


def secret_matches(expected: SecretStr | None, presented: str | None, setting: str) -> None:
    """Compare a presented shared secret in constant time; refuse when none is configured."""
    if expected is None or not expected.get_secret_value():
        raise WebhookRefused(f"no webhook secret is configured: set {setting}")
    if not presented or not hmac.compare_digest(presented.encode(), expected.get_secret_value().encode()):
        raise WebhookRefused("the webhook secret is missing or wrong")


class SharedSecret:
    """The generic scheme: the ``X-DSX-Webhook-Secret`` header equals ``WEBHOOK__SECRET``."""

    def __init__(self, settings: WebhookSettings, *, allow_query: bool = False) -> None:
        self.secret = settings.secret
        self.allow_query = allow_query

    async def verify(self, request: Request, body: bytes) -> None:
        presented = request.headers.get(SECRET_HEADER)
        if presented is None and self.allow_query:
            presented = request.query_params.get(SECRET_QUERY)
        secret_matches(self.secret, presented, "DSXCONNECTOR_WEBHOOK__SECRET")


class WebhookGate:
    """The connector's verifier (built once: verifiers cache certificates and keys) and its counters."""

    def __init__(self, connector: Connector) -> None:
        self.connector = connector
        self.enabled = connector.settings.webhook.verify
        self.verifier: WebhookVerifier = connector.webhook_verifier()
        self.accepted = 0
        self.refused = 0
        self.last_refusal: str | None = None
        if not self.enabled:
            log.warning(
                "webhook events are accepted WITHOUT verifying their sender "
                "(DSXCONNECTOR_WEBHOOK__VERIFY=false): never run like this where the webhook is reachable"
            )

    async def check(self, request: Request, body: bytes) -> JSONResponse | None:
        """None when the request may proceed; else the 401 answer (the refusal is counted and logged),
        or a 503 when the sender cannot be checked for now (the storage delivers it again)."""
        if not self.enabled:
            return None
        try:
            await self.verifier.verify(request, body)
        except WebhookUnavailable as exc:
            log.warning("webhook event not checked, redelivery asked: %s", exc.reason)
            return JSONResponse(
                {"status": "error", "error": "unavailable", "message": f"webhook not checked: {exc.reason}"},
                status_code=503,
                headers={"Retry-After": str(exc.retry_after_s)},
            )
        except WebhookRefused as exc:
            self.refused += 1
            self.last_refusal = exc.reason
            client = request.client.host if request.client else None
            log.warning("webhook event refused: %s", exc.reason, extra={"client": client})
            return JSONResponse(
                {"status": "error", "error": "unauthenticated", "message": f"webhook refused: {exc.reason}"},
                status_code=401,
            )
        self.accepted += 1
        return None

    async def preflight(self, request: Request) -> Response | None:
        """The answer to ``OPTIONS /webhook/event`` when the verifier has a handshake there (CloudEvents)."""
        handshake = getattr(self.verifier, "preflight", None)
        if handshake is None:
            return None
        if self.enabled:
            refused = await self.check(request, b"")
            if refused is not None:
                return refused
        try:
            answer: Response = await handshake(request)
        except WebhookRefused as exc:
            return JSONResponse({"status": "error", "error": "invalid_request", "message": exc.reason}, 400)
        return answer

    def stats(self) -> dict[str, Any]:
        """What ``/readyz`` shows: verified and refused events since start (the reasons are logged,
        not shown: ``/readyz`` is unauthenticated)."""
        return {"verify": self.enabled, "accepted": self.accepted, "refused": self.refused}


def webhook_gate(request: Request) -> WebhookGate:
    """The app's gate, built on first use."""
    gate: WebhookGate | None = getattr(request.app.state, "webhooks", None)
    if gate is None:
        gate = request.app.state.webhooks = WebhookGate(request.app.state.runtime.connector)
    return gate
