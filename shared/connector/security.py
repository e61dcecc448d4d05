"""DSX-HMAC (SPEC §8) in a connector, both directions, and its enrollment.

- Enrollment: the connector registers with ``DSXCONNECTOR_ENROLLMENT_TOKEN`` in
  ``X-Enrollment-Token`` and takes its key pair from the answer (``hmac_key_id``/``hmac_secret``),
  on every registration (the 60 s heartbeat): a pair the core rotated arrives that way. The
  previous pair stays accepted for :data:`PREVIOUS_KEY_GRACE_S`, so calls the core signed just
  before the switch still pass. Credentials live in memory, and in ``DSXCONNECTOR_AUTH__KEY_FILE``
  (mode 0600) when it is set: a restarted connector then signs its first heartbeat and keeps its
  identity (a fleet-wide token alone may not re-register an existing uuid; without the file, give the
  connector a scoped token). ``DSXCONNECTOR_AUTH__HMAC_KEY_ID`` / ``__HMAC_SECRET`` (1.x) seed them
  until the first registration answer.
- Outgoing (connector → core): :class:`CoreAuth`, the ``httpx.Auth`` of the control-plane client,
  signs every call, the registration (heartbeat) included once it holds a pair: the core lets an
  existing connector re-register only with its signature or a token scoped to it. A signed
  registration the core refuses with 401 (its pair was reset) is sent once more with the token only.
- Incoming (core → connector): :func:`verify_core_request`, a FastAPI dependency on every route the
  core calls (``read_file``, ``item_action``, ``full_scan``, ``estimate``, ``repo_check``,
  ``config``); it checks the signature, the 60 s skew and replayed nonces (kept in memory, never
  forgotten inside the window: past ``DSXCONNECTOR_AUTH__NONCE_CAPACITY`` it answers 503), and
  answers 401. The checks that need no body (the header, the skew, the key id) run before the body
  is read (:meth:`CoreRequestGuard.check_headers`, from ``app.HotPathDispatch``), so an unsigned
  caller costs no memory. A key id the connector does not know makes it re-register at once (a
  rotation whose answer it missed).

``DSXCONNECTOR_AUTH__ENABLED`` (default true) turns both directions on; ``false`` is for a core
that runs with ``DSXCONNECT_AUTH__ENABLED=false``, and is logged as a warning.
"""

from __future__ import annotations

import json
import logging
import os
import time
from collections.abc import AsyncGenerator, Awaitable, Callable, Generator
from pathlib import Path

import httpx
from fastapi import HTTPException, Request

from shared.connector.settings import ConnectorSettings
from shared.hmac_auth import (
    DEFAULT_SKEW_S,
    HmacError,
    HmacParams,
    NonceCache,
    NonceStoreFull,
    Signer,
    check_signature,
    check_skew,
    parse_authorization,
    path_and_query,
)
from shared.redaction import register_secret

log = logging.getLogger(__name__)

#: a FastAPI dependency that raises ``HTTPException(401)`` for a request the core did not sign
RequestVerifier = Callable[[Request], Awaitable[None]]

PREVIOUS_KEY_GRACE_S = 900.0
REGISTER_PATH_SUFFIX = "/connectors/register"


class ConnectorCredentials:
    """This connector's DSX-HMAC pair (and the one before it, for a grace period), in memory and,
    with ``key_file``, on disk."""

    def __init__(
        self, key_id: str | None = None, secret: str | None = None, key_file: str | None = None
    ) -> None:
        self._current: tuple[str, str] | None = None
        self._previous: tuple[str, str, float] | None = None
        self._signer: Signer | None = None
        self.key_file = Path(key_file) if key_file else None
        stored = self._read_file()
        if stored is not None:
            key_id, secret = stored
        if key_id and secret:
            self.update(key_id, secret)

    @classmethod
    def from_settings(cls, settings: ConnectorSettings) -> ConnectorCredentials:
        auth = settings.auth
        secret = auth.hmac_secret.get_secret_value() if auth.hmac_secret else None
        return cls(auth.hmac_key_id, secret, auth.key_file)

    def _read_file(self) -> tuple[str, str] | None:
        if self.key_file is None or not self.key_file.is_file():
            return None
        try:
            data = json.loads(self.key_file.read_text())
            return str(data["key_id"]), str(data["secret"])
        except (OSError, ValueError, KeyError, TypeError) as exc:
            log.warning("DSXCONNECTOR_AUTH__KEY_FILE unreadable, ignored", extra={"error": str(exc)})
            return None

    def _write_file(self) -> None:
        if self.key_file is None:
            return
        try:
            if self._current is None:
                self.key_file.unlink(missing_ok=True)
                return
            tmp = self.key_file.with_suffix(self.key_file.suffix + ".tmp")
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            with os.fdopen(fd, "w") as handle:
                json.dump({"key_id": self._current[0], "secret": self._current[1]}, handle)
            tmp.replace(self.key_file)
        except OSError as exc:
            log.warning("could not write DSXCONNECTOR_AUTH__KEY_FILE", extra={"error": str(exc)})

    @property
    def key_id(self) -> str | None:
        return self._current[0] if self._current else None

    def update(self, key_id: str, secret: str, previous_valid_s: float = PREVIOUS_KEY_GRACE_S) -> bool:
        """Adopt a pair (from a registration answer); True when it changed.

        The pair it replaces keeps verifying the core's calls for ``previous_valid_s`` (what the core
        says it still honours, at most ``PREVIOUS_KEY_GRACE_S``; 0 after a reset or revocation, when
        the old pair may be in someone else's hands)."""
        if self._current == (key_id, secret):
            return False
        register_secret(secret)
        grace = min(max(previous_valid_s, 0.0), PREVIOUS_KEY_GRACE_S)
        self._previous = None
        if self._current is not None and grace > 0:
            self._previous = (*self._current, time.monotonic() + grace)
        self._current = (key_id, secret)
        self._signer = Signer(key_id, secret)
        self._write_file()
        return True

    def clear(self) -> None:
        self._current = self._previous = self._signer = None
        self._write_file()

    def signer(self) -> Signer | None:
        return self._signer

    def secret_for(self, key_id: str) -> str | None:
        if self._current and self._current[0] == key_id:
            return self._current[1]
        if self._previous and self._previous[0] == key_id and self._previous[2] > time.monotonic():
            return self._previous[1]
        return None


def _is_registration(request: httpx.Request) -> bool:
    return request.method == "POST" and request.url.path.endswith(REGISTER_PATH_SUFFIX)


class CoreAuth(httpx.Auth):
    """Enrollment token on registrations (whose answer brings the pair), DSX-HMAC on every other call."""

    requires_request_body = True

    def __init__(self, credentials: ConnectorCredentials, enrollment_token: str | None) -> None:
        self.credentials = credentials
        self.enrollment_token = enrollment_token

    def _prepare(self, request: httpx.Request, *, sign: bool = True) -> None:
        if _is_registration(request) and self.enrollment_token:
            request.headers["X-Enrollment-Token"] = self.enrollment_token
        signer = self.credentials.signer() if sign else None
        request.headers.pop("Authorization", None)
        if signer is not None:
            request.headers["Authorization"] = signer.authorization(
                request.method, request.url.raw_path.decode("ascii"), request.content
            )

    def _learn(self, request: httpx.Request, response: httpx.Response, *, pair_refused: bool = False) -> None:
        """Adopt the pair of a registration answer. ``pair_refused``: the core refused our signed
        registration (401: it no longer knows the pair, reset by an operator), so the old pair is
        dropped at once rather than kept for a grace period."""
        if not _is_registration(request):
            return
        if response.status_code == 403:  # revoked by an operator: nothing signed with the old pair counts
            self.credentials.clear()
            return
        if response.status_code >= 300:
            return
        try:
            body = json.loads(response.content)
        except ValueError:
            return
        key_id = body.get("hmac_key_id") if isinstance(body, dict) else None
        secret = body.get("hmac_secret") if isinstance(body, dict) else None
        fresh = isinstance(key_id, str) and isinstance(secret, str) and bool(key_id) and bool(secret)
        stated = body.get("hmac_previous_valid_s") if isinstance(body, dict) else None
        grace = PREVIOUS_KEY_GRACE_S  # an older core does not say: its default
        if isinstance(stated, int | float) and not isinstance(stated, bool):
            grace = float(stated)
        if pair_refused:
            grace = 0.0
        if fresh and self.credentials.update(str(key_id), str(secret), previous_valid_s=grace):
            log.info("DSX-HMAC key pair received from dsx-connect", extra={"key_id": key_id})

    def _retry_unsigned(self, request: httpx.Request, response: httpx.Response) -> bool:
        """A signed registration refused with 401 (the core no longer knows our pair): once more with
        the enrollment token alone."""
        return (
            _is_registration(request)
            and response.status_code == 401
            and "Authorization" in request.headers
            and bool(self.enrollment_token)
        )

    def sync_auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        request.read()
        self._prepare(request)
        response = yield request
        refused = self._retry_unsigned(request, response)
        if refused:
            response.read()
            self._prepare(request, sign=False)
            response = yield request
        if _is_registration(request):
            response.read()
            self._learn(request, response, pair_refused=refused)

    async def async_auth_flow(self, request: httpx.Request) -> AsyncGenerator[httpx.Request, httpx.Response]:
        await request.aread()
        self._prepare(request)
        response = yield request
        refused = self._retry_unsigned(request, response)
        if refused:
            await response.aread()
            self._prepare(request, sign=False)
            response = yield request
        if _is_registration(request):
            await response.aread()
            self._learn(request, response, pair_refused=refused)


class CoreRequestGuard:
    """Verifies the core's DSX-HMAC on incoming requests (see the module docstring)."""

    def __init__(
        self,
        credentials: ConnectorCredentials | None,
        *,
        enabled: bool = True,
        skew_s: int = DEFAULT_SKEW_S,
        on_unknown_key: Callable[[], None] | None = None,
        nonce_capacity: int = 200_000,
    ) -> None:
        self.credentials = credentials
        self.enabled = enabled
        self.skew_s = skew_s
        self.nonces = NonceCache(ttl_s=2 * skew_s, max_entries=nonce_capacity)
        self.on_unknown_key = on_unknown_key

    def check_headers(self, authorization: str | None) -> None:
        """The checks that need no body: a DSX-HMAC ``Authorization``, its timestamp inside the skew,
        a key id this connector holds; ``HTTPException(401)`` otherwise.

        Run before the body is read (``app.HotPathDispatch``), so that a caller without the key
        costs no memory; :meth:`verify` then checks the signature over the body and the nonce."""
        if not self.enabled:
            return
        try:
            self._key_of(authorization)
        except HmacError as exc:
            raise self._refusal(exc) from None

    def _key_of(self, authorization: str | None) -> tuple[HmacParams, str]:
        """The header's parameters and the secret of its key id; ``HmacError`` when refused."""
        params = parse_authorization(authorization)
        check_skew(params, skew_s=self.skew_s)
        secret = self.credentials.secret_for(params.key_id) if self.credentials else None
        if secret is None:
            if self.on_unknown_key is not None:
                self.on_unknown_key()
            if self.credentials is None or self.credentials.key_id is None:
                raise HmacError("unknown_key", "this connector has no DSX-HMAC key yet (not enrolled)")
            raise HmacError("unknown_key", "unknown DSX-HMAC key id")
        return params, secret

    @staticmethod
    def _refusal(exc: HmacError) -> HTTPException:
        log.warning(
            "refused a request not signed by dsx-connect",
            extra={"reason": exc.reason, "error": exc.message},
        )
        return HTTPException(401, exc.message, headers={"WWW-Authenticate": "DSX-HMAC"})

    async def verify(self, request: Request) -> None:
        if not self.enabled:
            return
        try:
            params, secret = self._key_of(request.headers.get("authorization"))
            scope = request.scope
            raw_path = scope.get("raw_path") or scope["path"].encode()
            path_q = path_and_query(
                raw_path.decode("latin-1"), scope.get("query_string", b"").decode("latin-1")
            )
            check_signature(params, secret, request.method, path_q, await request.body())
            if not self.nonces.add(params.key_id, params.nonce):
                raise HmacError("replayed", "DSX-HMAC nonce already used (replayed request)")
        except NonceStoreFull as exc:
            log.warning("refused a signed request: nonce store full", extra={"error": str(exc)})
            raise HTTPException(503, str(exc), headers={"Retry-After": "1"}) from None
        except HmacError as exc:
            raise self._refusal(exc) from None


def core_auth(settings: ConnectorSettings) -> CoreAuth | None:
    """The auth of calls to the core: enrollment on registration, DSX-HMAC on the rest."""
    token = settings.enrollment_token.get_secret_value() if settings.enrollment_token else None
    register_secret(token)
    if not settings.auth.enabled:
        log.warning(
            "DSXCONNECTOR_AUTH__ENABLED=false: calls from and to dsx-connect are neither signed nor checked"
        )
        return None
    credentials = ConnectorCredentials.from_settings(settings)
    if token is None and credentials.key_id is None:
        log.warning(
            "no DSXCONNECTOR_ENROLLMENT_TOKEN (nor an HMAC pair): dsx-connect will refuse this connector's "
            "registration, and this connector refuses every call until it has a key"
        )
    return CoreAuth(credentials, token)


async def verify_core_request(request: Request) -> None:
    """The app's :class:`CoreRequestGuard` (``app.state.core_guard``); accepts all when there is none."""
    guard: CoreRequestGuard | None = getattr(request.app.state, "core_guard", None)
    if guard is not None:
        await guard.verify(request)
