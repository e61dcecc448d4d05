"""Amazon SNS message verification for the S3 connector's webhook.

SNS signs every message it posts: the signature (base64, RSA PKCS#1 v1.5 over SHA-1 for
``SignatureVersion`` 1, SHA-256 for 2) covers a canonical string of the message's fields, and
``SigningCertURL`` names the X.509 certificate whose key made it. Following Amazon's
"Verifying the signatures of Amazon SNS messages":

* the certificate is fetched only from ``https://sns.<region>.amazonaws.com[.cn]/SimpleNotificationService-….pem``
  (another host pattern can be configured, for tests), and cached by URL. Anyone can post a
  message naming any such URL, so a URL that held no valid certificate is not fetched again for a
  while, concurrent messages naming one URL share its fetch, and a few fetches run at once: past
  ``_PENDING_AT_MOST`` URLs being fetched, a message is answered 503 (SNS delivers it again);
* the canonical string is ``Name\\nvalue\\n`` for, in this order, ``Message``, ``MessageId``,
  ``Subject`` (when present), ``Timestamp``, ``TopicArn``, ``Type`` for a ``Notification``, and
  ``Message``, ``MessageId``, ``SubscribeURL``, ``Timestamp``, ``Token``, ``TopicArn``, ``Type`` for a
  ``SubscriptionConfirmation`` or ``UnsubscribeConfirmation``;
* the ``TopicArn`` must match ``DSXCONNECTOR_AWS_SNS_TOPIC_ARNS`` (patterns with ``*``), so a topic
  of another account cannot subscribe the connector and feed it events;
* a notification's ``Timestamp`` must be within SNS's retry window (an hour, plus clock skew): a
  signed message kept by anyone who received it (another subscriber of the topic) cannot be
  replayed later. Within the window, the connector drops a ``MessageId`` it has already submitted.

An S3 event posted directly (not through SNS) carries no signature and is refused.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import json
import re
import time
from collections import OrderedDict
from datetime import UTC, datetime
from fnmatch import fnmatchcase
from typing import Any, Generic, TypeVar
from urllib.parse import parse_qs, urlsplit

import httpx
from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from fastapi import Request

from shared.connector.webhook_auth import WebhookRefused, WebhookUnavailable

#: where SNS certificates and subscription URLs may live (scheme and authority, matched in full). The
#: label after ``sns.`` must be a region: a looser label also matched S3's virtual-hosted names of a
#: bucket called ``sns`` (``sns.s3.amazonaws.com``, ``sns.s3-us-west-2.amazonaws.com``), which AWS's
#: wildcard certificates cover and whose owner could have served a signing certificate
DEFAULT_URL_PATTERN = r"https://sns\.[a-z]{2}(-gov|-iso[a-z]?)?-[a-z]+-[0-9]+\.amazonaws\.com(\.cn)?"
#: the path SNS gives its certificates; no query (each variant would be another fetch)
_CERT_PATH = re.compile(r"/SimpleNotificationService-[0-9A-Za-z]+\.pem")
#: SNS retries an HTTP/S delivery for at most an hour (its delivery policy's ceiling); a
#: notification published longer ago than that, or in the future, plus the clock skew, is a replay
MAX_NOTIFICATION_AGE_S = 3600.0
CLOCK_SKEW_S = 300.0
_KEEP_CERTS = 32  # SNS rotates certificates rarely; keep the cache small
#: a certificate URL that held no valid certificate (404, not PEM, expired) is answered from memory
_REFUSED_FOR_S = 600.0
_KEEP_REFUSED = 1024
#: certificate fetches at once, and distinct URLs waiting for one (past it: 503, delivered again)
_FETCHES_AT_ONCE = 4
_PENDING_AT_MOST = 16

V = TypeVar("V")

_NOTIFICATION_FIELDS: tuple[str, ...] = ("Message", "MessageId", "Subject", "Timestamp", "TopicArn", "Type")
_CONFIRMATION_FIELDS: tuple[str, ...] = (
    "Message",
    "MessageId",
    "SubscribeURL",
    "Timestamp",
    "Token",
    "TopicArn",
    "Type",
)
_HASHES: dict[str, type[hashes.HashAlgorithm]] = {"1": hashes.SHA1, "2": hashes.SHA256}
_CERT_CACHE_S = 3600.0
_CERT_MAX_BYTES = 64 * 1024


def url_allowed(url: str, pattern: str) -> bool:
    """Whether ``url``'s scheme and host (and port, if any) fully match ``pattern``, without user info."""
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        return False
    if parts.username is not None or parts.password is not None or not parts.hostname:
        return False
    origin = f"{parts.scheme}://{parts.hostname.lower()}" + (f":{port}" if port is not None else "")
    if port == 443 and parts.scheme == "https":  # the default port written out is the same origin
        origin = f"https://{parts.hostname.lower()}"
    return re.fullmatch(pattern, origin) is not None


def trusted_subscribe_url(url: str, pattern: str = DEFAULT_URL_PATTERN) -> bool:
    """Whether an SNS ``SubscribeURL`` may be fetched: the SNS host rule and ``Action=ConfirmSubscription``."""
    return url_allowed(url, pattern) and parse_qs(urlsplit(url).query).get("Action") == [
        "ConfirmSubscription"
    ]


def canonical_string(message: dict[str, Any]) -> bytes:
    """The bytes SNS signs for ``message`` (its ``Type`` selects the fields)."""
    kind = message.get("Type")
    if kind == "Notification":
        names = _NOTIFICATION_FIELDS
    elif kind in ("SubscriptionConfirmation", "UnsubscribeConfirmation"):
        names = _CONFIRMATION_FIELDS
    else:
        raise WebhookRefused(f"not an SNS message (Type {str(kind)[:40]!r})")
    lines = []
    for name in names:
        value = message.get(name)
        if value is None:
            if name == "Subject":
                continue
            raise WebhookRefused(f"SNS message without {name}")
        lines.append(f"{name}\n{value}\n")
    return "".join(lines).encode()


class SnsVerifier:
    """Checks the SNS signature and topic of each webhook request (``WebhookVerifier``)."""

    def __init__(
        self,
        topic_arns: list[str],
        *,
        url_pattern: str = DEFAULT_URL_PATTERN,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self.topic_arns = topic_arns
        self.url_pattern = url_pattern
        self._transport = transport
        self._certs: _Recent[rsa.RSAPublicKey] = _Recent(_CERT_CACHE_S, _KEEP_CERTS)
        self._refused: _Recent[str] = _Recent(_REFUSED_FOR_S, _KEEP_REFUSED)  # why, by URL
        self._pending: dict[str, asyncio.Future[rsa.RSAPublicKey]] = {}
        self._fetches = asyncio.Semaphore(_FETCHES_AT_ONCE)

    async def verify(self, request: Request, body: bytes) -> None:
        try:
            message = json.loads(body)
        except ValueError:
            raise WebhookRefused("the body is not an SNS message (JSON expected)") from None
        if not isinstance(message, dict) or "Signature" not in message:
            raise WebhookRefused("unsigned event: S3 notifications are accepted through SNS only")
        await self.verify_message(message)

    async def verify_message(self, message: dict[str, Any]) -> None:
        """Raise ``WebhookRefused`` unless ``message`` is signed by SNS for an allowed topic."""
        digest = _HASHES.get(str(message.get("SignatureVersion")))
        if digest is None:
            raise WebhookRefused(
                f"unsupported SNS SignatureVersion {str(message.get('SignatureVersion'))[:8]!r}"
            )
        topic = str(message.get("TopicArn", ""))
        if not self.topic_arns:
            raise WebhookRefused("no SNS topic is allowed: set DSXCONNECTOR_AWS_SNS_TOPIC_ARNS")
        if not any(fnmatchcase(topic, allowed) for allowed in self.topic_arns):
            raise WebhookRefused(f"SNS topic {topic[:200]!r} is not in DSXCONNECTOR_AWS_SNS_TOPIC_ARNS")
        try:
            signature = base64.b64decode(str(message.get("Signature", "")), validate=True)
        except (binascii.Error, ValueError):
            raise WebhookRefused("the SNS Signature is not base64") from None
        key = await self._signing_key(str(message.get("SigningCertURL", "")))
        try:
            key.verify(signature, canonical_string(message), padding.PKCS1v15(), digest())
        except InvalidSignature:
            raise WebhookRefused("the SNS signature does not match the message") from None
        if message.get("Type") == "Notification":
            check_fresh(str(message.get("Timestamp", "")))

    async def _signing_key(self, url: str) -> rsa.RSAPublicKey:
        parts = urlsplit(url)
        if not url_allowed(url, self.url_pattern) or parts.query or not _CERT_PATH.fullmatch(parts.path):
            raise WebhookRefused(f"SigningCertURL refused: not an SNS certificate URL ({url[:200]!r})")
        cached = self._certs.get(url)
        if cached is not None:
            return cached
        refused = self._refused.get(url)
        if refused is not None:
            raise WebhookRefused(refused)
        pending = self._pending.get(url)
        if pending is None:
            if len(self._pending) >= _PENDING_AT_MOST:
                raise WebhookUnavailable("too many SNS certificates are being fetched at once")
            pending = self._pending[url] = asyncio.ensure_future(self._fetch_key(url))
            pending.add_done_callback(lambda done: self._fetched(url, done))
        return await asyncio.shield(pending)  # a waiter that goes away leaves the fetch to the others

    def _fetched(self, url: str, done: asyncio.Future[rsa.RSAPublicKey]) -> None:
        del self._pending[url]
        error = None if done.cancelled() else done.exception()
        if isinstance(error, WebhookRefused):
            self._refused.put(url, error.reason)

    async def _fetch_key(self, url: str) -> rsa.RSAPublicKey:
        async with self._fetches:
            return await self._download_key(url)

    async def _download_key(self, url: str) -> rsa.RSAPublicKey:
        try:
            async with httpx.AsyncClient(
                transport=self._transport, timeout=10.0, follow_redirects=False
            ) as http:
                answer = await http.get(url)
        except httpx.HTTPError as exc:  # a blip: SNS must deliver the event again, not drop it
            raise WebhookUnavailable(f"the SNS certificate could not be fetched: {exc!r}") from None
        if answer.status_code >= 500 or answer.status_code == 429:
            raise WebhookUnavailable(f"the SNS certificate could not be fetched (HTTP {answer.status_code})")
        if answer.status_code != 200 or len(answer.content) > _CERT_MAX_BYTES:
            raise WebhookRefused(f"the SNS certificate could not be fetched (HTTP {answer.status_code})")
        try:
            cert = x509.load_pem_x509_certificate(answer.content)
        except ValueError:
            raise WebhookRefused("SigningCertURL does not hold a PEM certificate") from None
        now = datetime.now(UTC)
        if not cert.not_valid_before_utc <= now <= cert.not_valid_after_utc:
            raise WebhookRefused("the SNS signing certificate is expired or not yet valid")
        key = cert.public_key()
        if not isinstance(key, rsa.RSAPublicKey):
            raise WebhookRefused("the SNS signing certificate has no RSA key")
        self._certs.put(url, key)
        return key


class _Recent(Generic[V]):
    """Values by URL for ``keep_s`` seconds each, of the ``most`` URLs used last."""

    def __init__(self, keep_s: float, most: int) -> None:
        self._keep_s, self._most = keep_s, most
        self._items: OrderedDict[str, tuple[float, V]] = OrderedDict()

    def get(self, url: str) -> V | None:
        found = self._items.get(url)
        if found is None or time.monotonic() - found[0] >= self._keep_s:
            return None
        self._items.move_to_end(url)
        return found[1]

    def put(self, url: str, value: V) -> None:
        self._items[url] = (time.monotonic(), value)
        self._items.move_to_end(url)
        while len(self._items) > self._most:
            self._items.popitem(last=False)


def check_fresh(timestamp: str, now: float | None = None) -> None:
    """Refuse a notification whose ``Timestamp`` is past SNS's retry window or in the future."""
    try:
        published = datetime.fromisoformat(timestamp.replace("Z", "+00:00"))
    except ValueError:
        raise WebhookRefused(f"the SNS Timestamp is not a date ({timestamp[:40]!r})") from None
    if published.tzinfo is None:
        raise WebhookRefused(f"the SNS Timestamp has no time zone ({timestamp[:40]!r})")
    age = (time.time() if now is None else now) - published.timestamp()
    if age > MAX_NOTIFICATION_AGE_S + CLOCK_SKEW_S:
        raise WebhookRefused(f"SNS notification published {int(age)} s ago: a replay, refused")
    if age < -CLOCK_SKEW_S:
        raise WebhookRefused("SNS notification dated in the future: refused")
