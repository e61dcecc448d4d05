"""DSX-HMAC (SPEC §8): sign and verify one HTTP request, shared by the core and the connectors.

Wire format (the DSX-Connect 1.x one, unchanged)::

    Authorization: DSX-HMAC key_id=<id>, ts=<unix seconds>, nonce=<random>, sig=<base64 HMAC-SHA256>

``sig`` is standard base64 of HMAC-SHA256, keyed with the secret's UTF-8 text, over::

    METHOD|path?query|ts|nonce|<raw body bytes>

``path?query`` is the request target exactly as sent on the wire (percent-encoding kept; no ``?``
when there is no query). A verifier refuses a ``ts`` more than ``skew`` (60 s) from its clock and a
nonce it has seen within the window (replay), so nonces are remembered for twice the skew.

Everything here is pure apart from :class:`NonceCache` (in-process memory, used where no Redis is)
and :class:`DsxHmacAuth` (an ``httpx.Auth`` that signs every request of a client).

Error map: every refusal is a :class:`HmacError` whose ``reason`` is one of ``missing``,
``malformed``, ``unknown_key``, ``stale``, ``bad_signature``, ``replayed``.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import os
import re
import time
from collections import deque
from collections.abc import Callable, Generator
from dataclasses import dataclass

import httpx

SCHEME = "DSX-HMAC"
DEFAULT_SKEW_S = 60
_PARAMS = ("key_id", "ts", "nonce", "sig")
_TOKEN = re.compile(r"^[A-Za-z0-9._~+/=:-]{1,200}$")


class HmacError(Exception):
    """A request whose DSX-HMAC signature is refused; ``reason`` is a short machine-readable code."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason
        self.message = message


@dataclass(frozen=True, slots=True)
class HmacParams:
    """The parameters of one ``Authorization: DSX-HMAC ...`` header."""

    key_id: str
    ts: int
    nonce: str
    sig: str


def path_and_query(raw_path: str, query: str = "") -> str:
    """``path?query`` as signed: the query is appended only when there is one."""
    return f"{raw_path}?{query}" if query else raw_path


def canonical_prefix(method: str, path_q: str, ts: int | str, nonce: str) -> bytes:
    """The signed text before the body: ``METHOD|path?query|ts|nonce|``."""
    return f"{method.upper()}|{path_q}|{ts}|{nonce}|".encode()


def sign(secret: str, method: str, path_q: str, ts: int | str, nonce: str, body: bytes = b"") -> str:
    """The base64 signature of one request (the reference form; :class:`Signer` is the fast one)."""
    mac = hmac.new(secret.encode("utf-8"), canonical_prefix(method, path_q, ts, nonce) + body, hashlib.sha256)
    return base64.b64encode(mac.digest()).decode("ascii")


def new_nonce() -> str:
    """16 characters of standard base64 over 12 random bytes (no padding needed)."""
    return base64.b64encode(os.urandom(12)).decode("ascii")


def header_value(key_id: str, ts: int | str, nonce: str, sig: str) -> str:
    return f"{SCHEME} key_id={key_id}, ts={ts}, nonce={nonce}, sig={sig}"


class Signer:
    """Signs requests with one key pair; the HMAC key schedule is computed once and copied per request."""

    __slots__ = ("_mac", "key_id")

    def __init__(self, key_id: str, secret: str) -> None:
        self.key_id = key_id
        self._mac = hmac.new(secret.encode("utf-8"), digestmod=hashlib.sha256)

    def authorization(self, method: str, path_q: str, body: bytes = b"", ts: int | None = None) -> str:
        """The ``Authorization`` header value for this request."""
        ts = int(time.time()) if ts is None else ts
        nonce = new_nonce()
        mac = self._mac.copy()
        mac.update(f"{method}|{path_q}|{ts}|{nonce}|".encode())
        if body:
            mac.update(body)
        sig = base64.b64encode(mac.digest()).decode("ascii")
        return f"{SCHEME} key_id={self.key_id}, ts={ts}, nonce={nonce}, sig={sig}"

    def __repr__(self) -> str:  # never the secret
        return f"Signer(key_id={self.key_id!r})"


def parse_authorization(value: str | None) -> HmacParams:
    """Parse the header value; ``HmacError('missing'|'malformed')`` when it is not a DSX-HMAC one."""
    if not value or not value.startswith(SCHEME + " "):
        raise HmacError("missing", "a DSX-HMAC signature is required (Authorization: DSX-HMAC key_id=…)")
    parts: dict[str, str] = {}
    for item in value[len(SCHEME) + 1 :].split(","):
        name, sep, text = item.strip().partition("=")
        if not sep or name not in _PARAMS or name in parts or not _TOKEN.match(text):
            raise HmacError("malformed", "malformed DSX-HMAC header: expected key_id=, ts=, nonce=, sig=")
        parts[name] = text
    if set(parts) != set(_PARAMS) or not parts["ts"].isdigit() or len(parts["ts"]) > 12:
        raise HmacError("malformed", "malformed DSX-HMAC header: expected key_id=, ts=, nonce=, sig=")
    return HmacParams(parts["key_id"], int(parts["ts"]), parts["nonce"], parts["sig"])


def check_skew(params: HmacParams, now: float | None = None, skew_s: int = DEFAULT_SKEW_S) -> None:
    """``HmacError('stale')`` when ``ts`` is more than ``skew_s`` away from ``now``."""
    now = time.time() if now is None else now
    if abs(now - params.ts) > skew_s:
        raise HmacError("stale", f"DSX-HMAC timestamp is more than {skew_s} s away from this server's clock")


def check_signature(params: HmacParams, secret: str, method: str, path_q: str, body: bytes) -> None:
    """``HmacError('bad_signature')`` unless ``sig`` matches (constant-time comparison)."""
    try:
        given = base64.b64decode(params.sig, validate=True)
    except (binascii.Error, ValueError):
        raise HmacError("bad_signature", "DSX-HMAC signature is not valid base64") from None
    # one-shot (OpenSSL in one call): half the cost of an HMAC object for the small bodies of most calls
    expected = hmac.digest(
        secret.encode("utf-8"), canonical_prefix(method, path_q, params.ts, params.nonce) + body, "sha256"
    )
    if not hmac.compare_digest(expected, given):
        raise HmacError("bad_signature", "DSX-HMAC signature does not match the request")


class NonceStoreFull(Exception):
    """The nonce store holds its maximum within the replay window: refuse the request (503), since
    forgetting a nonce still inside the window would let its request be replayed."""


class NonceCache:
    """Nonces seen in the last ``ttl_s`` seconds, in memory (connectors have no Redis).

    Never forgets a nonce inside the window. It is bounded by rate, not by eviction: once it holds
    ``max_entries`` unexpired nonces (the window times the highest call rate it is sized for),
    :meth:`add` raises :class:`NonceStoreFull` and the caller answers 503 until nonces expire.
    Callers add a nonce only after its signature checked out, so only the key holder fills it.
    """

    def __init__(self, ttl_s: float = 2 * DEFAULT_SKEW_S, max_entries: int = 200_000) -> None:
        self.ttl_s = ttl_s
        self.max_entries = max_entries
        self._seen: set[str] = set()
        self._order: deque[tuple[float, str]] = deque()  # (expiry, key), oldest first

    def add(self, key_id: str, nonce: str, now: float | None = None) -> bool:
        """Remember the nonce; False if it was already seen within the window (a replay)."""
        now = time.monotonic() if now is None else now
        self._expire(now)
        key = f"{key_id}\x00{nonce}"
        if key in self._seen:
            return False
        if len(self._seen) >= self.max_entries:
            raise NonceStoreFull(
                f"{len(self._seen)} DSX-HMAC nonces held inside the replay window (the maximum); retry shortly"
            )
        self._seen.add(key)
        self._order.append((now + self.ttl_s, key))
        return True

    def _expire(self, now: float) -> None:
        order, seen = self._order, self._seen
        while order and order[0][0] <= now:
            seen.discard(order.popleft()[1])

    def __len__(self) -> int:
        return len(self._seen)


class DsxHmacAuth(httpx.Auth):
    """Signs every request of an httpx client; ``signer`` may be a callable (credentials that change)."""

    requires_request_body = True

    def __init__(self, signer: Signer | Callable[[], Signer | None] | None) -> None:
        self._signer = signer

    def current(self) -> Signer | None:
        return self._signer if isinstance(self._signer, Signer) or self._signer is None else self._signer()

    def auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        signer = self.current()
        if signer is not None:
            request.headers["Authorization"] = signer.authorization(
                request.method, request.url.raw_path.decode("ascii"), request.content
            )
        yield request
