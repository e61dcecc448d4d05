"""Pub/Sub push authentication for the Google Cloud Storage connector's webhook.

A push subscription with authentication on sends ``Authorization: Bearer <JWT>``: an OIDC ID token
that Google signs (RS256) for the subscription's service account. It is accepted when:

* its signature verifies against a key of the JWKS at ``DSXCONNECTOR_GCS_PUSH_JWKS_URL`` (Google's
  ``https://www.googleapis.com/oauth2/v3/certs`` by default; fetched with the event loop free,
  cached an hour, fetched again for an unknown key id at most once a minute);
* ``iss`` is ``accounts.google.com`` or ``https://accounts.google.com``, ``exp``/``iat`` hold (60 s
  leeway);
* ``aud`` is ``DSXCONNECTOR_GCS_PUSH_AUDIENCE`` (default: this webhook's URL, which is what Pub/Sub
  puts there when the subscription names no audience);
* ``email`` is one of ``DSXCONNECTOR_GCS_PUSH_SERVICE_ACCOUNTS`` with ``email_verified`` true. This
  matters most: anyone with a Google service account can mint a token for any audience.
"""

from __future__ import annotations

import time
from typing import Any

import httpx
import jwt
from fastapi import Request

from shared.connector.webhook_auth import WebhookRefused, WebhookUnavailable

GOOGLE_JWKS_URL = "https://www.googleapis.com/oauth2/v3/certs"
ISSUERS = ("accounts.google.com", "https://accounts.google.com")
_JWKS_TTL_S = 3600.0
_REFETCH_MIN_S = 60.0
_LEEWAY_S = 60


class PubSubPushVerifier:
    """Checks the OIDC token of each Pub/Sub push request (``WebhookVerifier``)."""

    def __init__(
        self,
        *,
        audience: str,
        service_accounts: list[str],
        jwks_url: str = GOOGLE_JWKS_URL,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self.audience = audience
        self.service_accounts = {email.lower() for email in service_accounts}
        self.jwks_url = jwks_url
        self._transport = transport
        self._keys: dict[str, Any] = {}
        self._fetched_at = float("-inf")

    async def verify(self, request: Request, body: bytes) -> None:
        scheme, _, token = request.headers.get("authorization", "").partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise WebhookRefused("no Pub/Sub OIDC token (Authorization: Bearer) in the push request")
        await self.verify_token(token.strip())

    async def verify_token(self, token: str) -> dict[str, Any]:
        """The token's claims, or ``WebhookRefused`` naming what failed."""
        if not self.service_accounts:
            raise WebhookRefused(
                "no push service account is allowed: set DSXCONNECTOR_GCS_PUSH_SERVICE_ACCOUNTS"
            )
        try:
            header = jwt.get_unverified_header(token)
        except jwt.PyJWTError as exc:
            raise WebhookRefused(f"the Pub/Sub token is not a JWT ({exc})") from None
        if header.get("alg") != "RS256":
            raise WebhookRefused(f"the Pub/Sub token is not RS256 (alg {str(header.get('alg'))[:16]!r})")
        key = await self._key(str(header.get("kid", "")))
        try:
            claims: dict[str, Any] = jwt.decode(
                token,
                key,
                algorithms=["RS256"],
                audience=self.audience,
                issuer=ISSUERS,
                leeway=_LEEWAY_S,
                options={"require": ["exp", "iat", "iss", "aud"]},
            )
        except jwt.PyJWTError as exc:
            raise WebhookRefused(f"the Pub/Sub token was refused: {exc}") from None
        email = str(claims.get("email", "")).lower()
        if email not in self.service_accounts or claims.get("email_verified") is not True:
            raise WebhookRefused(
                f"the Pub/Sub token's service account {email[:120]!r} is not in DSXCONNECTOR_GCS_PUSH_SERVICE_ACCOUNTS"
            )
        return claims

    async def _key(self, kid: str) -> Any:
        age = time.monotonic() - self._fetched_at
        if age > _JWKS_TTL_S or (kid not in self._keys and age > _REFETCH_MIN_S):
            await self._fetch()
        key = self._keys.get(kid)
        if key is None:
            raise WebhookRefused(f"the Pub/Sub token's key id {kid[:64]!r} is not in the JWKS")
        return key

    async def _fetch(self) -> None:
        try:
            async with httpx.AsyncClient(transport=self._transport, timeout=10.0) as http:
                answer = await http.get(self.jwks_url)
            answer.raise_for_status()
            keys = jwt.PyJWKSet.from_dict(answer.json()).keys
        except (httpx.HTTPError, ValueError, jwt.PyJWTError) as exc:
            if not self._keys:  # out of reach for now: Pub/Sub delivers the event again
                raise WebhookUnavailable(f"the JWKS at {self.jwks_url} could not be read: {exc!r}") from None
            return  # keep the keys we have; try again after the minimum interval
        finally:
            self._fetched_at = time.monotonic()
        self._keys = {k.key_id: k.key for k in keys if k.key_id}
