"""The SPEC §5 routes every connector serves under ``/{name}``, plus the SPEC §1 health routes."""

from __future__ import annotations

import asyncio
import json
import logging
import uuid
from collections.abc import Awaitable, Callable, Coroutine
from typing import Annotated, Any

import anyio
from fastapi import APIRouter, Body, Depends, HTTPException, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, PlainTextResponse, Response
from fastapi.routing import APIRoute
from pydantic import ValidationError

from shared.batch_read import MAX_ITEM_BYTES, MEDIA_TYPE, ReadFilesRequest, frame_header
from shared.connector.answers import (
    ConfigUpdated,
    ConnectorConfig,
    ConnectorHealth,
    ConnectorIdentity,
    ConnectorReadiness,
    ConnectorVersion,
    FullScanAccepted,
    ItemActionAnswer,
    WebhookAccepted,
    WebhookStats,
)
from shared.connector.base import WebhookReply
from shared.connector.errors import UnsupportedError, http_status
from shared.connector.responses import (
    OCTET_STREAM,
    content_response,
    error_body,
    error_response,
    small_item_bytes,
    wire_version,
)
from shared.connector.runtime import ConnectorRuntime, ScanRunning
from shared.connector.security import RequestVerifier
from shared.connector.settings import UPDATABLE_FIELDS
from shared.connector.webhook_auth import webhook_gate
from shared.errors import DsxError
from shared.item_version import ITEM_VERSIONS_HEADER
from shared.models import (
    EstimateResponse,
    ItemActionType,
    RequestedAction,
    ScanRequest,
    StatusResponse,
    utcnow_iso,
)

log = logging.getLogger(__name__)

#: how long a webhook's submission is retried before answering 503: storage senders time out after
#: 3 s (Graph) to 30 s (Event Grid) and deliver again, so holding them longer only duplicates events
WEBHOOK_SUBMIT_RETRY_S = 2.5

JOB_ID_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._:-]{0,127}$"


async def get_runtime(request: Request) -> ConnectorRuntime:
    """The app's runtime (async: a sync dependency would cost a threadpool hop per request)."""
    return request.app.state.runtime


Runtime = Annotated[ConnectorRuntime, Depends(get_runtime)]


class ConnectorRoute(APIRoute):
    """Answers whatever a connector raises with the mapped error (``Connector.classify_error``)."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def guarded(request: Request) -> Response:
            try:
                return await handler(request)
            except (HTTPException, RequestValidationError):
                raise
            except Exception as exc:
                err = request.app.state.runtime.connector.classify_error(exc)
                _log_error(request, err, exc)
                return error_response(err)

        return guarded


def _log_error(request: Request, err: DsxError, exc: BaseException) -> None:
    code = http_status(err)
    level = logging.WARNING if code >= 500 or code in (401, 403) else logging.INFO
    log.log(
        level,
        "request failed",
        exc_info=exc if code >= 500 and not isinstance(exc, DsxError) else None,
        extra={"path": request.url.path, "status_code": code, "error": err.message},
    )


# ---- health (root and prefix) -------------------------------------------------------------


def health_router() -> APIRouter:
    """``/healthz`` and ``/readyz``; mounted at the root and under the connector's prefix."""
    router = APIRouter(tags=["health"])

    @router.get("/healthz")
    async def healthz(runtime: Runtime) -> ConnectorHealth:
        """The process is up."""
        return ConnectorHealth(connector=runtime.settings.name, ts=utcnow_iso())

    @router.get("/readyz", responses={503: {"model": ConnectorReadiness, "description": "not ready"}})
    async def readyz(request: Request, runtime: Runtime, response: Response) -> ConnectorReadiness:
        """The asset is reachable and the core has accepted our registration (503 names what is not)."""
        # events refused as unverifiable are counted here
        webhooks = WebhookStats.model_validate(webhook_gate(request).stats())
        failing: dict[str, str] = {}
        try:
            await runtime.connector.check()
        except Exception as exc:
            failing["asset"] = runtime.connector.classify_error(exc).message
        if not runtime.registered:
            failing["dsx-connect"] = runtime.last_registration_error or "not registered yet"
        if failing:
            message = "; ".join(f"{name}: {why}" for name, why in failing.items())
            response.status_code = 503
            return ConnectorReadiness(
                status="error", failing=list(failing), message=message, webhooks=webhooks
            )
        return ConnectorReadiness(status="ready", ts=utcnow_iso(), webhooks=webhooks)

    return router


# ---- the connector contract ---------------------------------------------------------------


def read_file_endpoint(verifier: RequestVerifier) -> Callable[[Request], Awaitable[Response]]:
    """``POST {prefix}/read_file`` as a plain function of the request, served around FastAPI.

    It is the throughput hot path: one call per scanned item. FastAPI's middleware stack, routing,
    body model and dependency machinery cost about as much as the read itself, so ``app.py``
    dispatches the path here first (``HotPathDispatch``), and this reads ``location`` from the JSON
    body directly and answers its own errors. The FastAPI declaration stays for the OpenAPI document.
    """

    async def read_file(request: Request) -> Response:
        connector = request.app.state.runtime.connector
        try:
            await verifier(request)
            try:
                body = json.loads(await request.body() or b"null")
            except ValueError as exc:
                return _invalid(f"body is not JSON: {exc}")
            location = body.get("location") if isinstance(body, dict) else None
            if not isinstance(location, str) or not location:
                return _invalid("location: a non-empty string is required")
            return await content_response(await connector.read(location))
        except HTTPException as exc:  # 401 from the verifier, 413 from the body limit
            return JSONResponse({"detail": exc.detail}, status_code=exc.status_code, headers=exc.headers)
        except Exception as exc:
            err = connector.classify_error(exc)
            _log_error(request, err, exc)
            return error_response(err)

    return read_file


def read_files_endpoint(verifier: RequestVerifier) -> Callable[[Request], Awaitable[Response]]:
    """``POST {prefix}/read_files``: small items in one answer, one frame each (``shared.batch_read``).

    Served around FastAPI like ``read_file``. Each item is read as ``read_file`` would read it and
    answered with the status ``read_file`` would have had; the items are read concurrently (object
    stores answer each in a round trip).
    """

    async def read_files(request: Request) -> Response:
        try:
            await verifier(request)
        except HTTPException as exc:
            return JSONResponse({"detail": exc.detail}, status_code=exc.status_code, headers=exc.headers)
        try:
            wanted = ReadFilesRequest.model_validate_json(await request.body() or b"null")
        except ValidationError as exc:
            problems = "; ".join(
                f"{'.'.join(map(str, e['loc'])) or 'body'}: {e['msg']}" for e in exc.errors()
            )
            return _invalid(problems)

        return await read_files_answer(request, wanted)

    return read_files


async def read_files_answer(request: Request, wanted: ReadFilesRequest) -> Response:
    """The frames of ``wanted``'s items, read concurrently (object stores answer each in a round trip)."""
    connector = request.app.state.runtime.connector
    versions: list[str | None] = [None] * len(wanted.items)

    async def frame(index: int, location: str) -> bytes:
        try:
            content = await connector.read(location)
            data = await small_item_bytes(content, MAX_ITEM_BYTES)
        except Exception as exc:
            err = connector.classify_error(exc)
            _log_error(request, err, exc)
            payload = json.dumps(error_body(err)).encode()
            return frame_header(http_status(err), len(payload)) + payload
        if data is None:
            message = f"larger than {MAX_ITEM_BYTES} bytes: read it with read_file"
            payload = json.dumps({"status": "error", "error": "too_large", "message": message}).encode()
            return frame_header(413, len(payload)) + payload
        versions[index] = wire_version(content.version)
        return frame_header(200, len(data)) + data

    frames = await asyncio.gather(*(frame(n, item.location) for n, item in enumerate(wanted.items)))
    headers = {ITEM_VERSIONS_HEADER: json.dumps(versions, separators=(",", ":"))}
    return Response(b"".join(frames), media_type=MEDIA_TYPE, headers=headers)


def _invalid(message: str) -> JSONResponse:
    return JSONResponse({"status": "error", "message": message, "error": "invalid_request"}, status_code=422)


def connector_router(
    prefix: str, verifier: RequestVerifier, signed_paths: set[str] | None = None
) -> APIRouter:
    """The SPEC §5 routes under ``prefix``; ``verifier`` guards what the core calls (DSX-HMAC seam).

    ``signed_paths``, when given, receives the paths of the routes ``verifier`` guards (the app
    checks their DSX-HMAC header before it reads their body)."""
    # 1.x callers may post JSON without a Content-Type (SPEC §4): parse it as JSON anyway
    options: dict[str, Any] = {
        "tags": ["connector"],
        "route_class": ConnectorRoute,
        "strict_content_type": False,
    }
    router = APIRouter(prefix=prefix, **options)
    public = APIRouter(**options)
    signed = APIRouter(dependencies=[Depends(verifier)], **options)

    @signed.post(
        "/read_file",
        response_class=Response,
        responses={
            200: {
                "content": {OCTET_STREAM: {"schema": {"type": "string", "format": "binary"}}},
                "description": "the item's bytes (chunked when large); header X-Item-Version when the storage has one",
            }
        },
    )
    async def read_file(request: Request, scan_request: ScanRequest) -> Response:
        """The item's bytes (``application/octet-stream``); a JSON answer is an error."""
        # documents the route; requests are served by ``read_file_endpoint`` (see app.py)
        connector = request.app.state.runtime.connector
        return await content_response(await connector.read(scan_request.location))

    @signed.post(
        "/read_files",
        response_class=Response,
        responses={
            200: {"content": {MEDIA_TYPE: {}}, "description": "one frame per item (shared/batch_read.py)"}
        },
    )
    async def read_files(request: Request, wanted: ReadFilesRequest) -> Response:
        """Up to 32 small items in one answer, each with its own status: an extension of SPEC §5 that
        the workers use for small items (a connector without it is read with ``read_file``)."""
        # documents the route; requests are served by ``read_files_endpoint`` (see app.py)
        return await read_files_answer(request, wanted)

    @public.get("/")
    async def read_identity(request: Request, runtime: Runtime) -> ConnectorIdentity:
        """Who this connector is and what it is doing; its uuid and asset only to the core (signed):
        a uuid is what an attacker would try to enroll as (SPEC §8)."""
        s, connector = runtime.settings, runtime.connector
        private: dict[str, Any] = {}
        if request.headers.get("authorization"):
            try:
                await verifier(request)
                private = {"uuid": s.uuid, "asset": s.asset}  # (a watcher's error names paths too)
            except HTTPException:
                pass
        return ConnectorIdentity.model_validate({
            "name": s.name,
            "display_name": s.display_name or s.name,
            **private,
            "version": connector.version,
            "url": s.connector_url,
            "filter": s.filter,
            "item_action": s.item_action.value,
            "registered": runtime.registered,
            "monitor": {
                "enabled": s.monitor,
                "running": runtime.watching,
                "error": runtime.watch_error if private else None,
            },
            "scans": [vars(p) for p in runtime.scans.values() if p.active],
        })  # fmt: skip

    @public.get("/version")
    async def read_version(runtime: Runtime) -> ConnectorVersion:
        """The connector's version."""
        return ConnectorVersion(name=runtime.settings.name, version=runtime.connector.version)

    @signed.post("/full_scan", status_code=202)
    async def start_full_scan(
        runtime: Runtime,
        response: Response,
        job_id: Annotated[str | None, Query(pattern=JOB_ID_PATTERN)] = None,
        limit: Annotated[int | None, Query(ge=1)] = None,
    ) -> FullScanAccepted:
        """Enumerate the asset and submit every item in the background; answers at once."""
        job_id = job_id or str(uuid.uuid4())
        progress, started = runtime.start_full_scan(job_id, limit)
        response.headers["X-Job-Id"] = job_id
        return FullScanAccepted(
            status="success",
            message="full scan started" if started else "full scan already running",
            id=job_id,
            job_id=job_id,
            limit=limit,
            submitted=progress.submitted,
        )

    @signed.get("/estimate")
    async def read_estimate(runtime: Runtime) -> EstimateResponse:
        """How many items (and bytes) a full scan would submit."""
        return await runtime.connector.estimate()

    @signed.get("/repo_check")
    async def check_repository(
        runtime: Runtime, preview: Annotated[int, Query(ge=0, le=1000)] = 5
    ) -> StatusResponse:
        """The asset is reachable; ``preview`` holds a few sample locations."""
        return await runtime.connector.repo_check(preview)

    @signed.put("/item_action", response_model=ItemActionAnswer)
    async def apply_item_action(runtime: Runtime, scan_request: ScanRequest) -> JSONResponse:
        """Apply ``requested_action``, or else the configured action, to the item.

        With ``item_version``, only while the item still has that version: otherwise 412
        (``error: item_changed``) and nothing is touched; a missing item answers 404 (``not_found``).
        """
        connector = runtime.connector
        action = scan_request.requested_action or RequestedAction(type=runtime.settings.item_action)
        extra = {"item_action": action.type.value, "location": scan_request.location}
        try:
            connector.resolve(scan_request.location)
            if action.type == ItemActionType.NOTHING:
                outcome = StatusResponse(status="nothing", message="no action configured")
            elif action.type not in connector.supported_actions:
                raise UnsupportedError(f"action {action.type.value!r} is not supported by {connector.name}")
            else:
                outcome = await connector.act(scan_request.location, action, scan_request.item_version)
        except Exception as exc:
            return error_response(connector.classify_error(exc), **extra)
        return JSONResponse({**outcome.model_dump(mode="json"), **extra})

    @signed.get("/config")
    async def read_config(runtime: Runtime) -> ConnectorConfig:
        """The current settings, secrets redacted."""
        return ConnectorConfig.model_validate(runtime.settings.redacted())

    @signed.put("/config", response_model=ConfigUpdated)
    async def update_config(runtime: Runtime, changes: Annotated[dict[str, Any], Body()]) -> JSONResponse:
        """Change asset, filter, item_action or item_action_move_metainfo live; 422 on bad values."""
        unknown = sorted(set(changes) - set(UPDATABLE_FIELDS))
        if unknown or not changes:
            allowed = ", ".join(UPDATABLE_FIELDS)
            message = f"not updatable: {', '.join(unknown)}" if unknown else "nothing to update"
            return _unprocessable(f"{message} (allowed: {allowed})")
        try:
            settings = await runtime.reconfigure(changes)
        except ValidationError as exc:
            errors = [f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors()]
            return _unprocessable("; ".join(errors))
        except ScanRunning as exc:
            return JSONResponse({"status": "error", "message": exc.message, "error": "scan_running"}, 409)
        except (ValueError, DsxError) as exc:
            return _unprocessable(str(getattr(exc, "message", exc)))
        body = ConfigUpdated(status="success", message="configuration updated", config=settings.redacted())
        return JSONResponse(body.model_dump(mode="json"))

    # Public to DSX-HMAC: storage services (SNS, Event Grid, Pub/Sub, Graph) cannot sign it. Each is
    # authenticated by what its source offers, before the body is parsed (shared.connector.webhook_auth).
    @public.post(
        "/webhook/event",
        openapi_extra={
            "requestBody": {"content": {"application/json": {"schema": {}}, "text/plain": {"schema": {}}}}
        },
        response_model=WebhookAccepted,
        responses={
            200: {
                "content": {"text/plain": {"schema": {"type": "string"}}},
                "description": "items submitted; a storage's handshake (Graph validationToken) is echoed as text",
            },
            401: {"description": "the sender could not be verified"},
        },
    )
    async def receive_webhook_event(request: Request, runtime: Runtime) -> Response:
        """A storage change notification; the items it names are submitted for scanning."""
        if not runtime.connector.accepts_webhooks:
            raise UnsupportedError(
                f"webhook events are not supported by {runtime.connector.name}", status_code=404
            )
        body = await request.body()
        refused = await webhook_gate(request).check(request, body)
        if refused is not None:
            return refused
        validation_token = request.query_params.get("validationToken")
        if validation_token is not None and not body.strip():  # Graph's subscription handshake
            event: Any = {"validationToken": validation_token[:1024]}
        else:
            try:  # JSON whatever the Content-Type (SNS posts text/plain)
                event = json.loads(body) if body.strip() else None
            except ValueError as exc:
                return _invalid(f"body is not JSON: {exc}")
        answer = await runtime.connector.webhook(event if isinstance(event, dict) else {"events": event})
        reply = answer if isinstance(answer, WebhookReply) else WebhookReply(items=answer)
        try:
            # answered within the sender's timeout (Graph: 3 s), not after SUBMIT_RETRY_MAX_S or one
            # REQUEST_TIMEOUT_S attempt to a stalled core
            with anyio.fail_after(WEBHOOK_SUBMIT_RETRY_S):
                accepted = await runtime.submit_items(reply.items, retry_for_s=WEBHOOK_SUBMIT_RETRY_S)
        except (DsxError, TimeoutError) as exc:  # the core's trouble (down, full, slow), not the sender's
            problem = exc.message if isinstance(exc, DsxError) else "the core did not answer in time"
            later = runtime.submit_later(reply.items, reply.after_submit)
            log.warning(
                "webhook event not submitted yet; the sender will deliver it again",
                extra={"count": len(reply.items), "error": problem, "submitting_in_background": later},
            )
            return JSONResponse(
                {
                    "status": "error",
                    "message": f"not submitted, deliver again: {problem}",
                    "error": "retryable",
                },
                status_code=503,
                headers={"Retry-After": "10"},
            )
        if reply.after_submit is not None:
            await reply.after_submit()
        if reply.text is not None:
            return PlainTextResponse(reply.text, status_code=reply.status_code)
        if reply.body is not None:
            return JSONResponse(reply.body, status_code=reply.status_code)
        body_out = WebhookAccepted(
            status="success", message=f"{accepted} item(s) submitted", submitted=accepted
        )
        return JSONResponse(body_out.model_dump(mode="json"))

    @public.options(
        "/webhook/event",
        response_class=Response,
        responses={
            200: {
                "description": "handshake accepted: no body, the answer is its headers",
                "headers": {
                    "WebHook-Allowed-Origin": {"schema": {"type": "string"}},
                    "WebHook-Allowed-Rate": {"schema": {"type": "string"}},
                },
            },
            401: {"description": "the sender could not be verified"},
            405: {"description": "this storage has no handshake"},
        },
    )
    async def preflight_webhook(request: Request) -> Response:
        """The CloudEvents webhook handshake (``WebHook-Request-Origin``), where the storage uses it."""
        answer = await webhook_gate(request).preflight(request)
        return answer if answer is not None else Response(status_code=405, headers={"Allow": "POST"})

    if signed_paths is not None:
        signed_paths.update(prefix + route.path for route in signed.routes if isinstance(route, APIRoute))
    router.include_router(signed)
    router.include_router(public)
    return router


def _unprocessable(message: str) -> JSONResponse:
    return JSONResponse({"status": "error", "message": message, "error": "invalid_config"}, status_code=422)
