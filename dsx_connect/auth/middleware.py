"""The core's thin auth layer: who is calling, set on the request before any route code runs.

It does only what needs the raw request, and decides nothing about routes (each route declares its
access with a dependency of :mod:`dsx_connect.auth.access`):

- ``Authorization: DSX-HMAC ...``: the header is parsed, the key id and the timestamp are checked
  *before* the body is read (a forged header costs no body read); then the body is read (bounded),
  the signature and the nonce are checked, and the body is handed on to the app. A bad signature
  answers 401 here, or 429 past ``AUTH__FAILED_SIGNATURES_PER_MIN`` refusals in a minute: guesses
  (a malformed header, an unknown key id) are counted per source address, failures with a known key
  (stale, replayed, wrong signature) per source address and key id. The count only ever turns a
  refusal into a 429: a request whose signature verifies is never refused, so junk sent from a
  shared address (an ingress, a NAT) cannot stop the correctly signed connectors behind it.
- ``X-API-Key`` / ``Authorization: Bearer`` with a valid operator key, or the ``dsx_session``
  cookie of a login: an operator. A wrong key counts as a failed login of its source; past the
  limit (the count shared by every replica, checked before the key) any key answers 429, on every
  route; a session's state-changing request sent from another origin
  (``Sec-Fetch-Site`` / ``Origin``) is refused with 403 (CSRF).
- Anything else: anonymous (a Bearer value may still be an enrollment token: the registration
  route reads it).

The caller is stored as ``scope["state"]["principal"]`` (:class:`~dsx_connect.auth.principal.Principal`).
"""

from __future__ import annotations

import json
import logging
from urllib.parse import urlsplit

import anyio.to_thread
import redis
from starlette.requests import cookie_parser
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from dsx_connect.auth.principal import ANONYMOUS, OPERATOR, Principal
from dsx_connect.auth.settings import AuthSettings
from dsx_connect.state.auth_credentials import ConnectorKeys, KeyRecord, claim_nonce
from dsx_connect.state.auth_operators import SESSION_COOKIE, OperatorAuth
from dsx_connect.state.auth_ratelimit import FailureLimiter, guess_limiter
from shared.body_limit import BodyTooLarge, send_too_large
from shared.hmac_auth import (
    HmacError,
    HmacParams,
    check_signature,
    check_skew,
    parse_authorization,
    path_and_query,
)

log = logging.getLogger(__name__)

REGISTER_PATH = "/connectors/register"


class Refused(Exception):
    def __init__(self, status: int, reason: str, message: str, retry_after: int | None = None) -> None:
        super().__init__(message)
        self.status, self.reason, self.message, self.retry_after = status, reason, message, retry_after


def _headers(scope: Scope) -> dict[str, str]:
    found: dict[str, str] = {}
    for name, value in scope["headers"]:
        key = name.decode("latin-1")
        if key not in found:  # the first of a repeated header, as Starlette reads it
            found[key] = value.decode("latin-1")
    return found


def bearer(headers: dict[str, str]) -> str:
    scheme, _, value = headers.get("authorization", "").partition(" ")
    return value.strip() if scheme.lower() == "bearer" else ""


def _session(headers: dict[str, str]) -> str:
    # Starlette's lenient parser, as request.cookies (and /auth/session) read it: the strict one gave
    # up on the whole header when another cookie of the host held a space or a quote
    raw = headers.get("cookie")
    return cookie_parser(raw).get(SESSION_COOKIE, "") if raw else ""


_SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


def cross_site(headers: dict[str, str]) -> bool:
    """Whether a browser sent this request from another site or origin (``Sec-Fetch-Site``, else
    ``Origin`` against ``Host`` or a proxy's ``X-Forwarded-Host``). A request without either is no
    browser's cross-site request.

    Browsers send no ``Sec-Fetch-*`` to plain-HTTP origins other than localhost, and a proxy may
    rewrite ``Host`` (nginx's default), so its ``X-Forwarded-Host`` counts too: no page can add that
    header to a cross-origin request without a CORS preflight, which this API never grants."""
    fetch_site = headers.get("sec-fetch-site")
    if fetch_site is not None:
        return fetch_site not in ("same-origin", "none")
    origin = headers.get("origin")
    if origin is None:
        return False
    if origin == "null":
        return True
    claimed = urlsplit(origin).netloc.lower()
    forwarded = headers.get("x-forwarded-host", "").split(",")[0].strip().lower()
    # an origin without a host (``file://``) is no page of ours, even when no proxy header came
    ours = {host for host in (headers.get("host", "").lower(), forwarded) if host}
    return claimed not in ours


def source_of(scope: Scope) -> str:
    client = scope.get("client")
    return str(client[0]) if client else "unknown"


async def _read_body(receive: Receive, limit: int) -> bytes:
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] != "http.request":
            raise Refused(400, "disconnected", "the client went away")
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            raise BodyTooLarge(limit)
        chunks.append(chunk)
        if not message.get("more_body", False):
            return b"".join(chunks)


def _replay(body: bytes, receive: Receive) -> Receive:
    sent = False

    async def replay() -> Message:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()  # http.disconnect when the client goes

    return replay


#: how long past the replay window a nonce is kept: each replica checks timestamps against its own
#: clock, so a request another replica judged in its window may reach one whose clock is behind; a
#: nonce kept exactly ``2 * skew`` could then be forgotten while its timestamp still passes there
NONCE_MARGIN_S = 60


def nonce_ttl_s(skew_s: int) -> int:
    """How long a DSX-HMAC nonce is remembered: the whole window a timestamp may pass (``2 * skew``)
    plus :data:`NONCE_MARGIN_S` for clock differences between replicas."""
    return 2 * skew_s + NONCE_MARGIN_S


class AuthMiddleware:
    """Sets the principal of every HTTP request (see the module docstring)."""

    def __init__(
        self,
        app: ASGIApp,
        settings: AuthSettings,
        client: redis.Redis,
        max_body_bytes: int,
        register_path: str = "/dsx-connect/api/v1" + REGISTER_PATH,
    ) -> None:
        self.app = app
        self.register_path = register_path  # the one route that checks and counts a lone Bearer itself
        self.settings = settings
        self.redis = client
        self.max_body_bytes = max_body_bytes
        self.keys = ConnectorKeys(client, settings)
        self.operators = OperatorAuth(client, settings)
        limit = settings.failed_signatures_per_min
        self.signature_guesses = FailureLimiter(client, "sig", limit)  # per source
        self.signature_failures = FailureLimiter(client, "sig-key", limit)  # per source and known key id
        self.guesses = guess_limiter(client, settings)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        try:
            principal, receive = await self._authenticate(scope, receive)
        except Refused as refused:
            await send_refusal(send, refused)
            return
        except BodyTooLarge:
            await send_too_large(send, self.max_body_bytes)
            return
        except redis.RedisError as exc:
            log.error("redis unavailable while checking credentials: %s", exc)
            await send_refusal(send, Refused(503, "unavailable", "Redis is unavailable; retry later"))
            return
        scope.setdefault("state", {})["principal"] = principal
        await self.app(scope, receive, send)

    async def _authenticate(self, scope: Scope, receive: Receive) -> tuple[Principal, Receive]:
        headers = _headers(scope)
        authorization = headers.get("authorization", "")
        if authorization.startswith("DSX-HMAC"):
            return await self._connector(scope, receive, authorization)
        key = headers.get("x-api-key") or bearer(headers)
        if key:
            return await self._key_holder(scope, headers, key), receive
        session = _session(headers)
        if session:
            valid: bool = await anyio.to_thread.run_sync(self.operators.session_ok, session)
            if valid and scope["method"] not in _SAFE_METHODS and cross_site(headers):
                # the cookie rides along with any page's form post (SameSite=Strict stops other sites
                # only, not a sibling app on another port or subdomain of the same site)
                raise cross_site_refused()
            if valid:
                return OPERATOR, receive
        return ANONYMOUS, receive

    async def _key_holder(self, scope: Scope, headers: dict[str, str], key: str) -> Principal:
        """An operator when ``key`` is an API key; every wrong key counts toward the source's limit
        of failed logins (``AUTH__LOGIN_ATTEMPTS_PER_MIN``), so keys cannot be guessed on any route."""
        source = source_of(scope)
        # a lone Bearer on the registration route may be an enrollment token: that route checks and
        # counts it (a minted one passes a spent budget; an operator key there is no enrollment
        # token). Beside an X-Enrollment-Token it is an API key like any other, counted here.
        # Exactly that route: any other path ending alike (``GET /auth/connectors/register``) runs no
        # enrollment check, and a Bearer there was neither refused past the budget nor counted.
        enrolling = (
            scope["method"] == "POST"
            and scope["path"] == self.register_path
            and "x-api-key" not in headers
            and "x-enrollment-token" not in headers
        )
        if not enrolling:
            # the shared count, whatever this replica saw: another may have spent the budget, and past
            # it the right key must answer as a wrong one (operator traffic is light: one Redis GET each)
            await self._unless_blocked(self.guesses, source, "wrong API keys or tokens")
        if self.operators.api_key_ok(key):
            return OPERATOR
        if not enrolling:
            await anyio.to_thread.run_sync(self.guesses.failed, source)
        return Principal("anonymous", presented="api_key")

    @staticmethod
    async def _unless_blocked(limiter: FailureLimiter, source: str, what: str) -> None:
        """429 while ``source`` is over ``limiter``'s budget, asked of Redis every time (operator
        credentials: a right key answers as a wrong one past the budget, so no guess is told apart)."""
        if await anyio.to_thread.run_sync(limiter.blocked, source):
            raise Refused(
                429,
                "too_many_failures",
                f"too many {what} from this address; retry later",
                retry_after=limiter.retry_after(),
            )

    async def _connector(
        self, scope: Scope, receive: Receive, authorization: str
    ) -> tuple[Principal, Receive]:
        source = source_of(scope)
        record: KeyRecord | None = None
        try:
            # the header, the key and the clock first: a forged header costs no body read
            params = parse_authorization(authorization)
            record = await anyio.to_thread.run_sync(self.keys.lookup, params.key_id)
            if record is None:
                raise HmacError("unknown_key", "unknown, expired or revoked DSX-HMAC key id")
            check_skew(params, skew_s=self.settings.hmac_skew_s)
            body = await _read_body(receive, self.max_body_bytes)
            await anyio.to_thread.run_sync(self._verify, scope, params, record, body)
        except HmacError as exc:
            log.warning(
                "refused a DSX-HMAC request: %s", exc.message, extra={"reason": exc.reason, "source": source}
            )
            raise await self._signature_refused(source, record, exc) from None
        return Principal("connector", record.uuid), _replay(body, receive)

    async def _signature_refused(self, source: str, record: KeyRecord | None, exc: HmacError) -> Refused:
        """401 for a refused signature, counted: a guess (no known key) against its source, a failure
        with a known key against that key from that source; past the budget of either, 429. Only a
        request refused anyway is ever answered 429 (never one whose signature verifies)."""
        if record is None:
            limiter, counted, what = self.signature_guesses, source, "refused DSX-HMAC signatures"
        else:
            limiter, counted = self.signature_failures, f"{source}|{record.key_id}"
            what = "refused DSX-HMAC signatures with this key"
        count = await anyio.to_thread.run_sync(limiter.count_failure, counted)
        if count > limiter.limit:  # the budget was spent before this one
            return Refused(
                429, "too_many_failures", f"too many {what} from this address; retry later",
                retry_after=limiter.retry_after(),
            )  # fmt: skip
        return Refused(401, exc.reason, exc.message)

    def _verify(self, scope: Scope, params: HmacParams, record: KeyRecord, body: bytes) -> None:
        raw_path = scope.get("raw_path") or scope["path"].encode()
        path_q = path_and_query(raw_path.decode("latin-1"), scope.get("query_string", b"").decode("latin-1"))
        check_signature(params, record.secret, scope["method"], path_q, body)
        if not claim_nonce(self.redis, params.key_id, params.nonce, nonce_ttl_s(self.settings.hmac_skew_s)):
            raise HmacError("replayed", "DSX-HMAC nonce already used (replayed request)")


async def send_refusal(send: Send, refused: Refused) -> None:
    """Answer ``refused`` as JSON, with ``WWW-Authenticate`` on a 401 and ``Retry-After`` when set."""
    body = json.dumps({"status": "error", "message": refused.message, "error": refused.reason}).encode()
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    if refused.status == 401:
        headers.append((b"www-authenticate", b'DSX-HMAC, Bearer realm="dsx-connect"'))
    if refused.retry_after is not None:
        headers.append((b"retry-after", str(refused.retry_after).encode()))
    await send({"type": "http.response.start", "status": refused.status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


def cross_site_refused() -> Refused:
    return Refused(403, "cross_site", "a state-changing request from another origin is refused")


class CrossSiteGuard:
    """With auth off (no session, so no check in :class:`AuthMiddleware`), what stands between any
    web page the operator's browser opens and this API: a browser's state-changing request from
    another origin is refused (403). A page can post a JSON body without a CORS preflight (a Blob
    with no type), so without this it could start scans, clear dead letters, mint tokens.
    Connectors and scripts send neither ``Sec-Fetch-Site`` nor ``Origin``: they pass."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["method"] not in _SAFE_METHODS and cross_site(_headers(scope)):
            await send_refusal(send, cross_site_refused())
            return
        await self.app(scope, receive, send)
