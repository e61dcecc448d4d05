"""Access rules, declared on each route as a dependency (SPEC §8).

A route states who may call it in its signature, with one of these ``Annotated`` aliases (or, for a
whole router, ``dependencies=[OPERATOR_ONLY]``):

=====================  ==========================================================================
``Public``             anybody (probes, docs, login, the unsigned reads a connector needs)
``OperatorOnly``       an operator key or session; anonymous 401, a connector 403
``ConnectorOrOperator`` a connector's DSX-HMAC signature or an operator
``ConnectorSelf``      the connector named by the ``{uuid}`` path parameter, or an operator
``OwnsJob``            the connector that owns ``{job_id}``, or an operator
``OwnedScanRequest``   the body, once parsed: a scan request whose connector is the caller
``OwnedScanBatch``     the same for every request of a batch
``Enrollment``         the registration route: signature, scoped or fleet token, or operator
=====================  ==========================================================================

The checks that need no I/O are ``async`` (FastAPI runs a sync dependency in its thread pool:
a hop per dependency on the hot intake path); those that read Redis stay sync.

Deny by default: :func:`access_gate` runs first on every route of the app and applies
``OperatorOnly`` to any route that declares none of these (and a test walks every route and fails
on such a route, see ``tests/security/test_access_rules.py``). The caller is the
:class:`~dsx_connect.auth.principal.Principal` the auth layer (``middleware``) set.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Annotated, Any, TypeVar

from fastapi import Depends, FastAPI, HTTPException, Path, Request
from fastapi.routing import APIRoute, iter_route_contexts

from dsx_connect.auth.middleware import bearer, source_of
from dsx_connect.auth.principal import Principal, principal_of
from dsx_connect.intake import JOB_ID_PATTERN
from dsx_connect.redis_client import get_redis
from dsx_connect.settings import get_settings
from dsx_connect.state.auth_enrollment import EnrollmentGrant, EnrollmentTokens
from dsx_connect.state.auth_ratelimit import FailureLimiter, guess_limiter
from dsx_connect.state.jobs import job_owner
from shared.models import ScanRequest, ScanRequestBatch

log = logging.getLogger(__name__)

F = TypeVar("F", bound=Callable[..., Any])
ACCESS_ATTR = "__dsx_access__"


def _rule(name: str) -> Callable[[F], F]:
    def mark(fn: F) -> F:
        setattr(fn, ACCESS_ATTR, name)
        return fn

    return mark


class AccessDenied(HTTPException):
    """401 (no or bad credential) or 403 (a credential that may not do this)."""

    def __init__(self, status_code: int, message: str, reason: str | None = None) -> None:
        headers = {"WWW-Authenticate": 'DSX-HMAC, Bearer realm="dsx-connect"'} if status_code == 401 else None
        super().__init__(status_code, message, headers=headers)
        self.reason = reason or ("unauthenticated" if status_code == 401 else "forbidden")


def _unauthenticated(who: Principal, needs: str) -> AccessDenied:
    if who.presented == "api_key":
        return AccessDenied(401, "the API key is not valid", "bad_api_key")
    return AccessDenied(401, f"authentication required: {needs}")


# ---- the rules -------------------------------------------------------------------------------


@_rule("public")
async def public(request: Request) -> Principal:
    """Anybody; the caller is still known (an operator may see more)."""
    return principal_of(request)


@_rule("operator")
async def operator_only(request: Request) -> Principal:
    who = principal_of(request)
    if who.is_operator:
        return who
    if who.is_connector:
        raise AccessDenied(
            403, "this endpoint is for operators (an API key), not connectors", "operators_only"
        )
    raise _unauthenticated(who, "an API key or a session")


@_rule("connector")
async def connector_or_operator(request: Request) -> Principal:
    who = principal_of(request)
    if who.kind == "anonymous":
        raise _unauthenticated(who, "a connector's DSX-HMAC signature")
    return who


@_rule("connector-self")
async def connector_self(
    who: Annotated[Principal, Depends(connector_or_operator)], uuid: Annotated[str, Path(max_length=64)]
) -> Principal:
    if who.is_connector and who.uuid != uuid:
        raise AccessDenied(403, "a connector may act only for itself", "not_owner")
    return who


@_rule("owns-job")
def owns_job(
    who: Annotated[Principal, Depends(connector_or_operator)],
    job_id: Annotated[str, Path(max_length=128, pattern=JOB_ID_PATTERN.pattern)],
) -> Principal:
    if who.is_connector:
        owner = job_owner(get_redis(), job_id)
        if owner is not None and owner != who.uuid:
            raise AccessDenied(403, "a connector may report only on its own jobs", "not_owner")
    return who


def _check_owner(who: Principal, requests: Iterable[ScanRequest]) -> None:
    if not who.is_connector:
        return
    if any(r.connector is not None and r.connector.uuid != who.uuid for r in requests):
        raise AccessDenied(403, "a connector may submit scan requests only for itself", "not_owner")


@_rule("owns-scan-requests")
async def owned_scan_request(
    who: Annotated[Principal, Depends(connector_or_operator)], scan_request: ScanRequest
) -> ScanRequest:
    _check_owner(who, (scan_request,))
    return scan_request


@_rule("owns-scan-requests")
async def owned_scan_batch(
    who: Annotated[Principal, Depends(connector_or_operator)], batch: ScanRequestBatch
) -> ScanRequestBatch:
    _check_owner(who, batch.requests)
    return batch


@dataclass(frozen=True, slots=True)
class EnrollmentCaller:
    """Who registers: the principal (a connector signing with its key, an operator, or nobody) and
    the enrollment token it presented, if valid (``token_presented``: one was sent at all)."""

    principal: Principal
    grant: EnrollmentGrant | None
    token_presented: bool


def refuse_while_blocked(limiter: FailureLimiter, source: str, what: str) -> None:
    """429 with ``Retry-After`` while ``source`` is over ``limiter``'s budget; a guessable secret is
    answered so whether it is right or wrong, so that a right guess is not told apart."""
    if limiter.blocked(source):
        raise HTTPException(
            429,
            f"too many {what} from this address; retry later",
            headers={"Retry-After": str(limiter.retry_after())},
        )


@_rule("enroll")
def enrollment(request: Request) -> EnrollmentCaller:
    """The registration route decides with what it finds here (see ``api/connectors.py``)."""
    who = principal_of(request)
    token = request.headers.get("x-enrollment-token") or bearer(dict(request.headers))
    grant = None
    # a signed registration is decided by its signature: the token it also carries (our connectors
    # send theirs on every heartbeat) is neither checked nor counted, so a stale one, or others'
    # failed logins from the same address, never lock a fleet's heartbeats out
    if token and not who.is_connector:
        settings = get_settings().auth
        limiter, source = guess_limiter(get_redis(), settings), source_of(request.scope)
        grant = EnrollmentTokens(get_redis(), settings).check(token)
        # a minted (scoped) token is 256 random bits, no more guessable than a signature: a budget
        # spent by others' wrong keys from its address (a NAT, an ingress) never refuses it, so 1.x
        # connectors keep their heartbeats. Any other token answers as a wrong one past the budget
        # (a fleet token is chosen by the operator: a right guess must not be told apart)
        if grant is None or not grant.scoped:
            refuse_while_blocked(limiter, source, "wrong API keys or tokens")
        if grant is None and not who.is_operator:
            limiter.failed(source)
    return EnrollmentCaller(who, grant, bool(token))


Public = Annotated[Principal, Depends(public)]
OperatorOnly = Annotated[Principal, Depends(operator_only)]
ConnectorOrOperator = Annotated[Principal, Depends(connector_or_operator)]
ConnectorSelf = Annotated[Principal, Depends(connector_self)]
OwnsJob = Annotated[Principal, Depends(owns_job)]
OwnedScanRequest = Annotated[ScanRequest, Depends(owned_scan_request)]
OwnedScanBatch = Annotated[ScanRequestBatch, Depends(owned_scan_batch)]
Enrollment = Annotated[EnrollmentCaller, Depends(enrollment)]

#: for ``APIRouter(dependencies=[...])`` / ``include_router(..., dependencies=[...])``
OPERATOR_ONLY = Depends(operator_only)
PUBLIC = Depends(public)


# ---- deny by default -------------------------------------------------------------------------


def declared_rules(dependant: Any) -> set[str]:
    """The access rules found in a route's dependency tree."""
    found: set[str] = set()
    stack = list(getattr(dependant, "dependencies", []))
    while stack:
        sub = stack.pop()
        if (rule := getattr(sub.call, ACCESS_ATTR, None)) is not None:
            found.add(rule)
        stack.extend(sub.dependencies)
    return found


def route_rules(app: FastAPI) -> list[tuple[str, frozenset[str], str, set[str]]]:
    """``(path, methods, endpoint name, rules)`` of every API route of ``app``, as served."""
    rows = []
    for context in iter_route_contexts(app.routes):
        dependant = getattr(context, "dependant", None)
        if dependant is None or context.endpoint is None:
            continue
        rows.append(
            (
                str(context.path),
                frozenset(context.methods or ()),
                getattr(context.endpoint, "__qualname__", str(context.endpoint)),
                declared_rules(dependant),
            )
        )
    return rows


def _undeclared_endpoints(app: FastAPI) -> set[int]:
    """Endpoints served by at least one route that declares no rule (the gate applies OperatorOnly)."""
    undeclared: set[int] = set()
    for context in iter_route_contexts(app.routes):
        dependant = getattr(context, "dependant", None)
        if dependant is None or context.endpoint is None:
            continue
        if not declared_rules(dependant) - {"gate"}:
            undeclared.add(id(context.endpoint))
            log.warning("route %s %s declares no access rule: operators only", context.methods, context.path)
    return undeclared


@_rule("gate")
async def access_gate(request: Request) -> None:
    """First dependency of every route: a route that declares no rule is for operators only."""
    app = request.scope.get("app")
    if app is None:
        return
    undeclared: set[int] | None = getattr(app.state, "undeclared_endpoints", None)
    if undeclared is None:
        undeclared = app.state.undeclared_endpoints = _undeclared_endpoints(app)
    route = request.scope.get("route")
    endpoint = (
        getattr(route, "endpoint", None) if isinstance(route, APIRoute) else request.scope.get("endpoint")
    )
    if endpoint is None or id(endpoint) in undeclared:
        await operator_only(request)


ACCESS_GATE = Depends(access_gate)
