"""Connector enrollment and driving a connector from the core (SPEC §4, §5)."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Annotated, Any

import httpx
from fastapi import APIRouter, Body, HTTPException, Path, Query, Request, Response, status
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse

from dsx_connect.api.answers import (
    ConnectorAnswer,
    ConnectorEstimate,
    FullScanAnswer,
    Registration,
    StateValue,
)
from dsx_connect.api.deps import JobsDep, KnownConnector, RedisDep, RegistryDep, SettingsDep
from dsx_connect.auth.access import ConnectorSelf, Enrollment, EnrollmentCaller, OperatorOnly
from dsx_connect.auth.deps import ConnectorCalls, ConnectorKeysDep
from dsx_connect.auth.urls import AddressPolicy, connector_url_problem
from dsx_connect.connector_client import AnswerKind, ConnectorClient, classify
from dsx_connect.connector_requests import Route
from dsx_connect.connectors import full_scan
from dsx_connect.state.auth_credentials import ConnectorRevoked, IdentityExists, IssuedKey
from dsx_connect.state.connectors import (
    MAX_STATE_KEYS,
    MAX_STATE_TOTAL_BYTES,
    StateBoundExceeded,
    get_state,
    put_state,
)
from shared.models import CONNECTOR_UUID_PATTERN, ConnectorInstance, RegisteredConnector, StatusResponse

log = logging.getLogger(__name__)

router = APIRouter(prefix="/connectors", tags=["connectors"])

MAX_STATE_BYTES = 64 * 1024
Name = Annotated[str, Path(min_length=1, max_length=128, pattern=r"^[A-Za-z0-9_.:-]+$")]
#: the uuid of a state route: a ``:`` in it would address another connector's namespace
# (``X`` + ``Y:N`` and ``X:Y`` + ``N``); registration refuses such uuids too
StateUuid = Annotated[str, Path(max_length=64, pattern=CONNECTOR_UUID_PATTERN)]


@router.post(
    "/register",
    status_code=201,
    responses={
        200: {"model": Registration, "description": "known connector refreshed"},
        401: {"description": "no signature, enrollment token or operator key; or a wrong one"},
        403: {"description": "the connector is revoked, or the token is scoped to another connector"},
        409: {"description": "the uuid already has an identity: sign with its key, or use a scoped token"},
        422: {"description": "the URL is refused (SSRF) or malformed"},
    },
)
def register_connector(
    connector: ConnectorInstance,
    caller: Enrollment,
    registry: RegistryDep,
    response: Response,
    settings: SettingsDep,
    credentials: ConnectorKeysDep,
    rotate: Annotated[
        bool,
        Query(
            description="issue a new DSX-HMAC key pair (signed request or operator; the old pair stays valid a while)"
        ),
    ] = False,
) -> Registration:
    """Register a connector (201), or refresh a known one as its heartbeat (200).

    With auth on, the answer carries the connector's DSX-HMAC pair (``hmac_key_id``, ``hmac_secret``).
    Who may do what (SPEC §8): the first registration of a uuid with a valid enrollment token creates
    its identity; later registrations must be signed with its key or present a token scoped to it
    (they then receive the same pair, a new one after a rotation); a fleet-wide token alone gets 409
    and nothing. A URL or name change and ``?rotate=true`` need the connector's signature (a scoped
    token's holder receives the pair anyway). An operator key together with an enrollment token may do
    all of it (operators can reset identities anyway); an operator key alone is no enrollment token.
    """
    policy = AddressPolicy.from_settings(settings.connectors)
    if problem := connector_url_problem(connector.url, policy):
        raise HTTPException(422, problem)
    issued = None
    if settings.auth.enabled:
        issued = _enroll(connector, caller, registry, credentials, settings, rotate)
    record, created = registry.register(connector)
    response.status_code = 201 if created else 200
    response.headers["Cache-Control"] = "no-store"
    if created:
        log.info("connector registered: %s %s at %s", record.name, record.uuid, record.url)
    body: dict[str, Any] = {
        "status": "success",
        "message": "registered" if created else "registration refreshed",
        "id": record.uuid,
    }
    if issued is not None:  # the 1.x enrollment answer's fields
        body |= {
            "connector_uuid": record.uuid,
            "hmac_key_id": issued.key_id,
            "hmac_secret": issued.secret,
            "hmac_previous_valid_s": issued.previous_valid_s,
        }
    return Registration.model_validate(body)


def _enroll(
    connector: ConnectorInstance,
    caller: EnrollmentCaller,
    registry: RegistryDep,
    credentials: ConnectorKeysDep,
    settings: SettingsDep,
    rotate: bool,
) -> IssuedKey:
    """Decide a registration (see :func:`register_connector`) and return the pair it receives."""
    who, grant, uuid = caller.principal, caller.grant, connector.uuid
    if who.is_connector and who.uuid != uuid:
        log.warning(
            "refused a connector registering another uuid", extra={"signer": who.uuid, "connector_uuid": uuid}
        )
        raise HTTPException(403, "a connector may register only itself")
    if not who.is_connector:  # a token is needed (an operator key alone is no enrollment token)
        if grant is None:
            if caller.token_presented:
                raise HTTPException(401, "the enrollment token is not valid (unknown, expired or revoked)")
            raise HTTPException(
                401,
                "registration needs an enrollment token (X-Enrollment-Token) or the connector's signature",
            )
        if grant.scoped and not grant.covers(uuid, connector.name):  # the body's claim; stored name below
            raise HTTPException(403, "this enrollment token is scoped to another connector")
    try:
        identity = credentials.identity(uuid)
        if identity is not None and identity.revoked:
            raise ConnectorRevoked(f"connector {uuid} is revoked; an operator can reinstate it")
        if who.is_connector or who.is_operator:  # the connector itself, or an operator (key + token)
            return credentials.enroll(uuid, rotate=rotate, name=connector.name)
        assert grant is not None
        if identity is None:  # a new identity: any valid token, atomically (two racers: one wins)
            return credentials.enroll(uuid, name=connector.name, create_only=True)
        known = registry.get(uuid, include_expired=True)
        name = identity.name or (known.name if known else None)
        fleet_reenroll = not grant.scoped and settings.auth.allow_fleet_reenroll
        if not (grant.covers(uuid, name) or fleet_reenroll):
            log.warning(
                "refused a registration of an enrolled connector with a %s token", grant.kind,
                extra={"connector_uuid": uuid, "connector_name": connector.name, "url": connector.url},
            )  # fmt: skip
            raise HTTPException(
                409,
                f"connector {uuid} is already enrolled: sign the registration with its key, or use an "
                "enrollment token scoped to it (an operator can mint one, or reset the identity)",
            )
        if rotate:
            raise HTTPException(
                403,
                "?rotate=true needs the connector's signature (operators: POST /auth/connectors/{uuid}/rotate)",
            )
        return credentials.enroll(uuid, name=None if name else connector.name)
    except ConnectorRevoked as exc:
        raise HTTPException(403, str(exc)) from None
    except IdentityExists:
        raise HTTPException(
            409,
            f"connector {uuid} is already enrolled: sign the registration with its key, or use an "
            "enrollment token scoped to it",
        ) from None


@router.delete("/unregister/{uuid}", responses={404: {"description": "unknown connector"}})
def unregister_connector(
    uuid: Annotated[str, Path(max_length=64)], registry: RegistryDep, _: ConnectorSelf
) -> StatusResponse:
    """Forget a connector's registration. Its schedule stays (``DELETE /connectors/schedule/{uuid}``
    removes it): a connector unregisters on every graceful stop, a rolling update included, and
    comes back under the same uuid."""
    if registry.unregister(uuid) is None:
        raise HTTPException(404, f"connector {uuid} is not registered")
    return StatusResponse(status="success", message="unregistered", id=uuid)


@router.get("/list")
def list_connectors(registry: RegistryDep, _: OperatorOnly) -> list[RegisteredConnector]:
    """Live connectors (expired heartbeats are dropped)."""
    return registry.list()


def _call(connector: ConnectorClient, route: Route, send: Callable[[], httpx.Response]) -> httpx.Response:
    """``send``'s answer; our 502 when it did not reach the connector's ``route``."""
    try:
        return send()
    except httpx.HTTPError as exc:
        raise HTTPException(
            502, f"connector unreachable at {connector.url(route)}: {type(exc).__name__}"
        ) from None


def _relay(response: httpx.Response) -> JSONResponse:
    """The connector's answer as ours; a connector that is unavailable (``classify``) and failed on
    its side (5xx) is our 502. So is a connector refusing the core's own credentials (401, 403: a
    key it does not know yet, or a hostile connector): relayed as they came, they read as the
    operator's credentials refused, and the dashboard signs the operator out on a 401."""
    try:
        body = response.json()
    except ValueError:
        body = {"status": "error", "message": response.text[:500]}
    code = response.status_code
    if code in (401, 403):
        said = body.get("message") or body.get("detail") if isinstance(body, dict) else None
        message = f"the connector refused the core's call ({code})" + (f": {str(said)[:300]}" if said else "")
        return JSONResponse({"status": "error", "message": message, "error": "connector_refused"}, 502)
    failed = classify(code, body) is AnswerKind.UNAVAILABLE and code >= 500
    return JSONResponse(body, status_code=502 if failed else code)


@router.post(
    "/full_scan/{uuid}",
    status_code=202,
    responses={502: {"description": "the connector did not start the scan"}},
)
def start_full_scan(
    _: OperatorOnly,
    connector: KnownConnector,
    jobs: JobsDep,
    calls: ConnectorCalls,
    response: Response,
    settings: SettingsDep,
    limit: Annotated[int | None, Query(ge=1)] = None,
    batch: Annotated[bool, Query(description="1.x: the connector submits in batches")] = False,
    batch_size: Annotated[
        int | None, Query(ge=1, description="1.x: items per batch; clamped to the core's maximum")
    ] = None,
    force: Annotated[
        bool, Query(description="read and scan every item, the unchanged ones too (no scan cache)")
    ] = False,
) -> FullScanAnswer:
    """Create a job and ask the connector to enumerate its asset into it (``batch``, ``batch_size`` forwarded)."""
    try:
        started = full_scan.start_full_scan(
            connector,
            jobs,
            calls,
            settings,
            limit=limit,
            batch=batch,
            batch_size=batch_size,
            force=force,
        )
    except full_scan.FullScanFailed as exc:
        raise HTTPException(502, str(exc)) from None
    response.headers["X-Job-Id"] = started.job_id
    return FullScanAnswer.model_validate(
        {
            "status": "success",
            "message": "full scan started",
            "id": started.job_id,
            "job_id": started.job_id,
            "estimate": started.estimate,
        }
    )


@router.get("/estimate/{uuid}", response_model=ConnectorEstimate)
def connector_estimate(_: OperatorOnly, calls: ConnectorCalls) -> JSONResponse:
    """The connector's estimate of its asset (count, bytes)."""
    return _relay(_call(calls, Route.ESTIMATE, calls.estimate))


@router.get("/repo_check/{uuid}", response_model=ConnectorAnswer)
def connector_repo_check(
    _: OperatorOnly,
    calls: ConnectorCalls,
    preview: Annotated[int, Query(ge=0, le=100)] = 5,
) -> JSONResponse:
    """Whether the connector reaches its asset, with a few sample keys."""
    return _relay(_call(calls, Route.REPO_CHECK, lambda: calls.repo_check(preview)))


@router.get("/healthz/{uuid}", response_model=ConnectorAnswer)
def connector_healthz(_: OperatorOnly, calls: ConnectorCalls) -> JSONResponse:
    """The connector's own health."""
    return _relay(_call(calls, Route.HEALTHZ, calls.healthz))


@router.get("/readyz/{uuid}", response_model=ConnectorAnswer)
def connector_readyz(_: OperatorOnly, calls: ConnectorCalls) -> JSONResponse:
    """The connector's readiness."""
    return _relay(_call(calls, Route.READYZ, calls.readyz))


@router.get("/config/{uuid}", response_model=ConnectorAnswer)
def get_connector_config(_: OperatorOnly, calls: ConnectorCalls) -> JSONResponse:
    """The connector's settings (secrets redacted by the connector)."""
    return _relay(_call(calls, Route.CONFIG, calls.get_config))


@router.put("/config/{uuid}", response_model=ConnectorAnswer)
def put_connector_config(
    _: OperatorOnly,
    calls: ConnectorCalls,
    update: Annotated[dict[str, Any], Body()],
) -> JSONResponse:
    """Live update of the connector's asset, filter or action."""
    return _relay(_call(calls, Route.CONFIG, lambda: calls.put_config(update)))


@router.put(
    "/state/{uuid}/{namespace}/{key}",
    status_code=status.HTTP_204_NO_CONTENT,
    responses={
        409: {
            "description": f"the connector's state holds {MAX_STATE_KEYS} keys already (a new key is refused)"
        },
        413: {
            "description": f"the value is over {MAX_STATE_BYTES} bytes, or the connector's state would pass "
            f"{MAX_STATE_TOTAL_BYTES} bytes"
        },
    },
)
async def put_connector_state(
    _: ConnectorSelf,
    uuid: StateUuid,
    namespace: Name,
    key: Name,
    request: Request,
    client: RedisDep,
) -> Response:
    """Keep a connector's cursor (e.g. a Graph delta token) across its restarts. A connector's state
    is bounded: at most 1,000 keys and 8 MiB (names and values) over all its namespaces."""
    body = await request.body()
    if len(body) > MAX_STATE_BYTES:
        raise HTTPException(413, f"state values are limited to {MAX_STATE_BYTES} bytes")
    try:
        await run_in_threadpool(
            put_state, client, uuid, namespace, key, body.decode("utf-8", errors="replace")
        )
    except StateBoundExceeded as exc:
        raise HTTPException(409 if exc.bound == "keys" else 413, str(exc)) from None
    return Response(status_code=204)


@router.get("/state/{uuid}/{namespace}/{key}", responses={404: {"description": "no value"}})
def get_connector_state(
    _: ConnectorSelf, uuid: StateUuid, namespace: Name, key: Name, client: RedisDep
) -> StateValue:
    """Read back a connector's stored cursor as ``{"value": ...}`` (the 1.x shape its connectors read)."""
    value = get_state(client, uuid, namespace, key)
    if value is None:
        raise HTTPException(404, f"no state {namespace}/{key} for connector {uuid}")
    return StateValue(value=value)
