"""The core's gate: every request is checked against :mod:`dsx_connect.auth.policy` before any route
code runs, so a refused request has no effect (nothing parsed, queued or stored).

Order of checks for a request:

1. Find the route the router will pick (the first full match) and its rule.
2. Public routes go through. Otherwise read the credential:
   ``Authorization: DSX-HMAC ...`` (a connector; the body is read, verified, then replayed to the app),
   ``X-API-Key`` / ``Authorization: Bearer`` (an operator; on ``/connectors/register`` the Bearer
   value is an enrollment token), or the ``dsx_session`` cookie (an operator's login).
3. Refuse with 401 (no or bad credential) or 403 (a valid credential of the wrong kind, or a
   connector acting for another connector), as JSON ``{"status": "error", "message", "error"}``.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from http.cookies import SimpleCookie
from typing import Any

import anyio.to_thread
import redis
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from dsx_connect import keys
from dsx_connect.auth.credentials import ConnectorKeys
from dsx_connect.auth.operators import SESSION_COOKIE, OperatorAuth
from dsx_connect.auth.policy import BATCH_KEYS, JOB_FLAGS, Rule, match_rule
from dsx_connect.auth.settings import AuthSettings
from shared.body_limit import BodyTooLarge, send_too_large
from shared.hmac_auth import HmacError, check_signature, check_skew, parse_authorization, path_and_query

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Principal:
    """Who is calling: an operator, a connector (by uuid), or nobody."""

    kind: str  # "operator" | "connector" | "anonymous"
    uuid: str | None = None


ANONYMOUS = Principal("anonymous")
OPERATOR = Principal("operator")


class Refused(Exception):
    def __init__(self, status: int, reason: str, message: str) -> None:
        super().__init__(message)
        self.status, self.reason, self.message = status, reason, message


def _headers(scope: Scope) -> dict[str, str]:
    found: dict[str, str] = {}
    for name, value in scope["headers"]:
        key = name.decode("latin-1")
        if key not in found:  # the first of a repeated header, as Starlette reads it
            found[key] = value.decode("latin-1")
    return found


def _bearer(headers: dict[str, str]) -> str:
    scheme, _, value = headers.get("authorization", "").partition(" ")
    return value.strip() if scheme.lower() == "bearer" else ""


def _session(headers: dict[str, str]) -> str:
    raw = headers.get("cookie")
    if not raw:
        return ""
    jar: SimpleCookie = SimpleCookie()
    try:
        jar.load(raw)
    except Exception:
        return ""
    morsel = jar.get(SESSION_COOKIE)
    return morsel.value if morsel else ""


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


class AuthMiddleware:
    """Enforces the policy table (see the module docstring)."""

    def __init__(
        self, app: ASGIApp, settings: AuthSettings, client: redis.Redis, max_body_bytes: int
    ) -> None:
        self.app = app
        self.settings = settings
        self.redis = client
        self.max_body_bytes = max_body_bytes
        self.keys = ConnectorKeys(client, settings)
        self.operators = OperatorAuth(client, settings)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        rule, path_params = self._route(scope)
        if rule.access == "public":
            await self.app(scope, receive, send)
            return
        try:
            principal, receive, body = await self._authenticate(scope, receive, rule)
            await self._authorize(rule, principal, path_params, body)
        except Refused as refused:
            await self._refuse(send, refused)
            return
        except BodyTooLarge:
            await send_too_large(send, self.max_body_bytes)
            return
        except redis.RedisError as exc:
            log.error("redis unavailable while checking credentials: %s", exc)
            await self._refuse(send, Refused(503, "unavailable", "Redis is unavailable; retry later"))
            return
        scope.setdefault("state", {})["principal"] = principal
        if rule.access == "limited" and principal.kind != "operator":
            send = _filtered(send, rule, principal)
        await self.app(scope, receive, send)

    # ---- steps -------------------------------------------------------------------------------

    def _route(self, scope: Scope) -> tuple[Rule, dict[str, Any]]:
        path, root = scope["path"], scope.get("root_path", "")
        if root and path.startswith(root):  # behind a proxy prefix: match the app's own path
            path = path[len(root) :] or "/"
        return match_rule(scope["method"], path)

    async def _authenticate(
        self, scope: Scope, receive: Receive, rule: Rule
    ) -> tuple[Principal, Receive, bytes | None]:
        headers = _headers(scope)
        authorization = headers.get("authorization", "")
        if rule.access == "enroll":
            token = headers.get("x-enrollment-token") or _bearer(headers)
            if not token:
                raise Refused(
                    401, "enrollment_required", "registration needs an enrollment token (X-Enrollment-Token)"
                )
            if not self.operators.enrollment_token_ok(token):
                raise Refused(401, "bad_enrollment_token", "the enrollment token is not valid")
            return Principal("enrolling"), receive, None
        if authorization.startswith("DSX-HMAC"):
            body = await _read_body(receive, self.max_body_bytes)
            uuid = await anyio.to_thread.run_sync(self._verify_hmac, scope, authorization, body)
            return Principal("connector", uuid), _replay(body, receive), body
        key = headers.get("x-api-key") or _bearer(headers)
        if key:
            if not self.operators.api_key_ok(key):
                raise Refused(401, "bad_api_key", "the API key is not valid")
            return OPERATOR, receive, None
        session = _session(headers)
        valid: bool = bool(session) and await anyio.to_thread.run_sync(self.operators.session_ok, session)
        if valid:
            return OPERATOR, receive, None
        return ANONYMOUS, receive, None

    def _verify_hmac(self, scope: Scope, authorization: str, body: bytes) -> str:
        try:
            params = parse_authorization(authorization)
            check_skew(params, skew_s=self.settings.hmac_skew_s)
            record = self.keys.lookup(params.key_id)
            if record is None:
                raise HmacError("unknown_key", "unknown, expired or revoked DSX-HMAC key id")
            raw_path = scope.get("raw_path") or scope["path"].encode()
            path_q = path_and_query(
                raw_path.decode("latin-1"), scope.get("query_string", b"").decode("latin-1")
            )
            check_signature(params, record.secret, scope["method"], path_q, body)
            nonce_key = keys.auth_nonce(params.key_id, params.nonce)
            if not self.redis.set(nonce_key, "1", nx=True, ex=2 * self.settings.hmac_skew_s):
                raise HmacError("replayed", "DSX-HMAC nonce already used (replayed request)")
        except HmacError as exc:
            log.warning("refused a DSX-HMAC request: %s", exc.message, extra={"reason": exc.reason})
            raise Refused(401, exc.reason, exc.message) from None
        return record.uuid

    async def _authorize(
        self, rule: Rule, principal: Principal, path_params: dict[str, Any], body: bytes | None
    ) -> None:
        kind = principal.kind
        if rule.access in ("enroll", "limited") or kind == "operator":
            return
        if kind == "anonymous":
            what = (
                "a connector's DSX-HMAC signature"
                if rule.access == "connector"
                else "an API key or a session"
            )
            raise Refused(401, "unauthenticated", f"authentication required: {what}")
        if rule.access == "operator":
            raise Refused(
                403, "operators_only", "this endpoint is for operators (an API key), not connectors"
            )
        uuid = principal.uuid
        if rule.owner == "path" and path_params.get("uuid") != uuid:
            raise Refused(403, "not_owner", "a connector may act only for itself")
        owners = (
            _request_owners(body, rule.owner == "batch")
            if rule.owner in ("request", "batch") and body
            else []
        )
        if any(owner != uuid for owner in owners):
            raise Refused(403, "not_owner", "a connector may submit scan requests only for itself")
        if rule.owner == "job":
            job_id = str(path_params.get("job_id", ""))
            owner = await anyio.to_thread.run_sync(self.redis.hget, keys.job(job_id), "connector_uuid")
            if owner is not None and owner != uuid:
                raise Refused(403, "not_owner", "a connector may report only on its own jobs")

    async def _refuse(self, send: Send, refused: Refused) -> None:
        body = json.dumps({"status": "error", "message": refused.message, "error": refused.reason}).encode()
        headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
        if refused.status == 401:
            headers.append((b"www-authenticate", b'DSX-HMAC, Bearer realm="dsx-connect"'))
        await send({"type": "http.response.start", "status": refused.status, "headers": headers})
        await send({"type": "http.response.body", "body": body})


def _request_owners(body: bytes, batch: bool) -> list[str | None]:
    """The connector uuids a scan request body names (malformed bodies are left to the route: 422)."""
    try:
        data = json.loads(body or b"null")
    except ValueError:
        return []
    items = data.get("requests") if batch and isinstance(data, dict) else [data]
    owners: list[str | None] = []
    for item in items if isinstance(items, list) else []:
        connector = item.get("connector") if isinstance(item, dict) else None
        if isinstance(connector, dict) and connector.get("uuid") is not None:
            owners.append(str(connector["uuid"]))
    return owners


def _view(rule: Rule, principal: Principal, data: Any) -> Any:
    """What a caller without an operator credential may see of a ``limited`` answer."""
    if not isinstance(data, dict):
        return {}
    if rule.view == "config":
        found = data.get("workers")
        workers: dict[str, Any] = found if isinstance(found, dict) else {}
        return {"workers": {k: workers[k] for k in BATCH_KEYS if k in workers}}
    stored = data.get("data")
    raw: dict[str, Any] = stored if isinstance(stored, dict) else {}
    fields = (*JOB_FLAGS, "status") if principal.kind == "connector" else JOB_FLAGS
    return {"job_id": data.get("job_id"), "data": {k: raw[k] for k in fields if k in raw}}


def _filtered(send: Send, rule: Rule, principal: Principal) -> Send:
    """Hold the answer, and send only :func:`_view` of it when it is a successful JSON one."""
    start: Message | None = None
    chunks: list[bytes] = []

    async def filtered(message: Message) -> None:
        nonlocal start
        if message["type"] == "http.response.start":
            start = message
            return
        if message["type"] != "http.response.body" or start is None:
            await send(message)
            return
        chunks.append(message.get("body", b""))
        if message.get("more_body", False):
            return
        body = b"".join(chunks)
        if start["status"] == 200:
            try:
                body = json.dumps(_view(rule, principal, json.loads(body))).encode()
            except ValueError:
                body = b"{}"
        headers = [(n, v) for n, v in start.get("headers", []) if n.lower() != b"content-length"]
        headers.append((b"content-length", str(len(body)).encode()))
        await send({**start, "headers": headers})
        await send({"type": "http.response.body", "body": body})

    return filtered
