"""Verdict action step: ask the connector to delete, move or tag a malicious item, exactly once."""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

import httpx

from dsx_connect.connector_client import AnswerKind, classify, error_field
from dsx_connect.connector_requests import Route, item_action_body, route_url
from dsx_connect.intake import request_id_for
from dsx_connect.redis_client import replicated
from dsx_connect.state.actions import ActionClaims, Claim, claimed_by, pending_since
from dsx_connect.state.dead_letters import DeadLetter
from dsx_connect.state.monitor_jobs import KIND as MONITOR
from dsx_connect.state.monitor_jobs import MonitorJobs
from dsx_connect.workers.context import WorkerContext
from dsx_connect.workers.hot_path import connector_error
from dsx_connect.workers.outcome import ItemOutcome
from dsx_connect.workers.scan import Dispatch
from shared.errors import DsxError, RetryableError
from shared.item_version import ERROR_NOT_FOUND
from shared.models import EventAction, ItemActionType, ScanTask

log = logging.getLogger(__name__)

CHANGED_MESSAGE = "action skipped: object changed since scan"
ANSWER_CAP = 64 * 1024  # of an item_action answer (a short StatusResponse), more is not read
MESSAGE_CHARS = 500  # of the connector's message, kept in the stored event
STATUSES = frozenset({"success", "error", "nothing"})
ACTIONS = frozenset(action.value for action in ItemActionType)
_NO_COMPRESSION = {"Accept-Encoding": "identity"}  # the cap counts the bytes as they will be read


class OutcomeUnknown(RetryableError):
    """The ask may have reached the connector and its answer was lost: it may have acted."""


@dataclass(frozen=True)
class ActionAnswer:
    action: EventAction  # as recorded
    kind: AnswerKind  # of the connector's answer (``connector_client.classify``)
    not_found: bool = False  # a 404 whose ``error`` says the item is not there (not a wrong route)


def run_action_batch(
    ctx: WorkerContext,
    items: list[ItemOutcome],
    dispatch: Dispatch,
    requeue: Callable[[list[ItemOutcome], float], None],
    attempt: str | None = None,
) -> None:
    """``attempt``: the delivering task's id, the same across its own retries and redeliveries, so
    that a claim it left is taken up at once, not waited for as another copy's."""
    deadline = time.monotonic() + ctx.settings.workers.start_deadline_s
    ctx.jobs.renew_leases((i.task for i in items), ctx.settings.jobs.redispatch_after_s)
    claims = ActionClaims(ctx.client)
    in_progress_s = action_in_progress_s(ctx)
    done: list[ItemOutcome] = []
    retry: list[ItemOutcome] = []
    deferred: list[ItemOutcome] = []
    busy: list[ItemOutcome] = []
    dead: list[DeadLetter] = []
    for item in items:
        if time.monotonic() > deadline:  # the task's time is up: the rest go back to the queue
            deferred.append(item)
            continue
        # Claim the action; a claim already there is a finished action, one in progress (another copy
        # of the item: requeued twice, redelivered), or one cut off by a crash.
        claim = claims.claim(item.task.id, attempt)
        since = pending_since(claim.recorded)
        if claim.recorded is not None and since is None:  # a redelivered task: the connector already acted
            done.append(item.model_copy(update={"action": EventAction.model_validate_json(claim.recorded)}))
            continue
        wrote = claim.token is not None  # a claim written now must survive a failover before the ask
        retried = since is not None and claim.recorded == item.action_claim  # our own retry's claim
        # Whether an earlier attempt may have acted: ours whose answer was lost, or one that left its
        # claim (a redelivered task, an attempt cut off). Our own retries after answers seen did not.
        acted_before = item.action_uncertain or (since is not None and not retried)
        uncertain = acted_before  # an attempt may have reached the connector: its outcome is unknown
        if retried and attempt is not None and not claimed_by(claim.recorded, attempt):
            # Renamed after this delivery: if it is cut off while asking, its redelivery finds its
            # own name, not the claim its message carries, and knows an ask may have gone out.
            claim = claims.take_over(item.task.id, claim.recorded or "", attempt)
            if claim.token is None:  # another copy took it over first
                busy.append(item)
                continue
            wrote = True
        elif since is not None and (retried or claimed_by(claim.recorded, attempt)):
            claim = Claim(claim.recorded, claim.recorded)  # our own retry or redelivery: the claim is ours
        elif since is not None:
            if time.time() - since < in_progress_s:
                busy.append(item)  # asked again once that attempt has had its time
                continue
            claim = claims.take_over(item.task.id, claim.recorded or "", attempt)
            if claim.token is None:  # another copy took it over first
                busy.append(item)
                continue
            wrote = True
        if wrote:  # (a claim already ours was confirmed when it was written)
            replicated(ctx.client, ctx.settings.redis_wait_replicas, ctx.settings.redis_wait_timeout_ms)
        try:
            answered = apply_action(ctx, item)
            action = answered.action
            if acted_before and answered.not_found:
                # An earlier attempt asked the connector and its answer was lost: the item is no
                # longer where it was, so that attempt applied the action.
                action = action.model_copy(
                    update={"applied": True, "status": "success", "message": "applied by an earlier attempt"}
                )
            elif answered.kind is AnswerKind.CHANGED:
                _scan_new_version(ctx, item, dispatch)
        except RetryableError as exc:
            uncertain = uncertain or isinstance(exc, OutcomeUnknown)
            if item.action_attempt < ctx.settings.workers.max_retries:
                # the retry keeps the claim (no other copy asks meanwhile) and what it knows
                retry.append(
                    item.model_copy(
                        update={
                            "action_attempt": item.action_attempt + 1,
                            "action_claim": claim.token,
                            "action_uncertain": uncertain,
                        }
                    )
                )
                log.warning(
                    "action on %s will be retried: %s",
                    item.task.location,
                    exc.message,
                    extra={"request_id": item.task.id},
                )
                continue
            action = EventAction(
                requested=item.planned_action().value,
                status="error",
                message=f"gave up after {item.action_attempt + 1} attempts: {exc.message}",
            )
            dead.append(
                DeadLetter(
                    id=item.task.id, stage="action", reason=action.message, attempts=item.action_attempt + 1,
                    job_id=item.task.job_id, connector_uuid=item.connector.uuid, location=item.task.location,
                    payload=item.model_copy(
                        update={"action_attempt": 0, "action_claim": None, "action_uncertain": False}
                    ).dump(),
                )
            )  # fmt: skip
        except DsxError as exc:
            action = EventAction(requested=item.planned_action().value, status="error", message=exc.message)
        if action.status != "error":  # applied, skipped or refused for good: never ask the connector twice
            claims.record(item.task.id, action)
        else:
            # Not applied: a requeue may try again. After attempts whose answers were lost, the claim
            # stays pending, so a requeued attempt that finds the item gone knows one of them acted.
            if not uncertain and claim.token is not None:
                claims.release(item.task.id, claim.token)
            log.warning(
                "action %s on %s failed: %s",
                action.requested,
                item.task.location,
                action.message,
                extra={"request_id": item.task.id},
            )
        done.append(item.model_copy(update={"action": action}))
    ctx.dead_letters.add_many(dead)
    if deferred:
        log.info("task deadline: %d actions not started are handed back", len(deferred))
        requeue(deferred, 0.0)
    if retry:
        requeue(retry, ctx.backoff(max(i.action_attempt for i in retry)))
    if busy:
        log.info("%d actions in progress in another attempt: asked again in %.0f s", len(busy), in_progress_s)
        requeue(busy, in_progress_s)
    if done:
        dispatch.store(done)


def action_in_progress_s(ctx: WorkerContext) -> float:
    """How long a pending claim stands for an attempt in progress: the connector's timeout, with
    room for the claim's replication and a slow worker; past it, the attempt was cut off."""
    return 2 * ctx.settings.workers.connector_timeout_s


def action_deadline_s(ctx: WorkerContext) -> float:
    """The wall-clock bound of one ``item_action`` call: the connector's timeout (which is at most
    ``item_deadline_s``), half of :func:`action_in_progress_s`, so no attempt still waits on the
    connector when another copy may take its claim over."""
    workers = ctx.settings.workers
    return min(workers.connector_timeout_s, workers.item_deadline_s)


def apply_action(ctx: WorkerContext, item: ItemOutcome) -> ActionAnswer:
    """PUT the scan request to the connector's ``/item_action``, guarded by the scanned version.

    Returns the action as recorded and the kind of the answer (``connector_client.classify``):
    ``GONE`` (404) and ``CHANGED`` (412 ``item_changed``: the item is not the version scanned, so
    the connector touched nothing) are typed outcomes. Raises what is retried: ``OutcomeUnknown``
    when the ask may have reached the connector and no answer came back.
    """
    # The registry's address, never the one the message carries: a dead letter requeued days later
    # would act on whatever answers at an address the connector has since left (SPEC §8)
    # (retried, then a dead letter: a connector restarting past its registration's TTL comes back)
    registered = ctx.connector(item.connector.uuid)
    if registered is None:
        raise RetryableError(f"connector {item.connector.uuid} is not registered: the action was not asked")
    body = item_action_body(item.task, item.connector, item.item_version)
    requested = item.planned_action().value
    url = route_url(registered.url, Route.ITEM_ACTION)
    status, content = _ask(
        ctx.http, url, body, ctx.connector_auth(item.connector.uuid), action_deadline_s(ctx)
    )
    if status == 401:  # our signature was refused (a pair that just changed): retried
        ctx.signature_refused(item.connector.uuid)
    kind = classify(status, content)
    if kind is AnswerKind.UNAVAILABLE:
        raise connector_error(status, content, "item_action")
    if kind is AnswerKind.CHANGED:
        return ActionAnswer(EventAction(requested=requested, status="skipped", message=CHANGED_MESSAGE), kind)
    return ActionAnswer(
        _recorded(requested, kind, _answer_fields(content)),
        kind,
        not_found=kind is AnswerKind.GONE and error_field(content) == ERROR_NOT_FOUND,
    )


def _answer_fields(content: bytes) -> dict[str, object]:
    """The connector's answer as a JSON object, or an error carrying its text."""
    try:
        answer = json.loads(content)
    except (ValueError, RecursionError):
        return {"status": "error", "message": content.decode("utf-8", "replace")}
    return answer if isinstance(answer, dict) else {"status": "error", "message": str(answer)}


def _recorded(requested: str, kind: AnswerKind, answer: dict[str, object]) -> EventAction:
    """What the stored event says of the action: the answer's fields checked, its message bounded."""
    status = answer.get("status")
    status = status if isinstance(status, str) and status in STATUSES else "error"
    applied = kind is AnswerKind.OK and status == "success"
    message = str(answer.get("message") or answer.get("description") or "")
    if kind is AnswerKind.GONE:
        status, message = "error", f"not found: {message}"
    elif kind is not AnswerKind.OK and status == "success":
        status = "error"
    # the action the connector says it applied (its configuration may have changed since the
    # registration the core holds), when it names one
    named = answer.get("item_action")
    action = named if isinstance(named, str) and named in ACTIONS else requested
    return EventAction(requested=action, applied=applied, status=status, message=message[:MESSAGE_CHARS])


def _ask(
    http: httpx.Client, url: str, body: dict[str, object], auth: httpx.Auth | None, deadline_s: float
) -> tuple[int, bytes]:
    """PUT ``body`` to ``url`` and read at most ``ANSWER_CAP`` bytes of the answer, within
    ``deadline_s`` of wall-clock time.

    httpx bounds each read, not the call, so a connector trickling its answer held the step
    forever: the exchange runs on a thread of its own, and one still going at the deadline is left
    to end by itself (it stops at its next piece, or its read timeout) while the step goes on.
    """
    done: list[tuple[int, bytes] | BaseException] = []
    stop = threading.Event()

    def exchange() -> None:
        try:
            done.append(_exchange(http, url, body, auth, stop))
        except BaseException as exc:  # handed to the step, which maps it
            done.append(exc)

    thread = threading.Thread(target=exchange, name="item_action", daemon=True)
    thread.start()
    thread.join(deadline_s)
    if not done:
        stop.set()
        raise OutcomeUnknown(f"item_action: no complete answer within {deadline_s:g} s")
    outcome = done[0]
    if isinstance(outcome, httpx.ConnectError | httpx.ConnectTimeout | httpx.PoolTimeout):
        raise RetryableError(f"item_action: connector unreachable: {outcome!r}")  # never asked
    if isinstance(outcome, httpx.TransportError):
        raise OutcomeUnknown(f"item_action: asked, answer lost: {outcome!r}")
    if isinstance(outcome, BaseException):
        raise outcome
    return outcome


def _exchange(
    http: httpx.Client, url: str, body: dict[str, object], auth: httpx.Auth | None, stop: threading.Event
) -> tuple[int, bytes]:
    with http.stream(
        "PUT", url, json=body, headers=_NO_COMPRESSION, auth=auth or httpx.USE_CLIENT_DEFAULT
    ) as response:
        content = bytearray()
        for piece in response.iter_raw():
            content += piece
            if len(content) >= ANSWER_CAP or stop.is_set():
                break
        return response.status_code, bytes(content[:ANSWER_CAP])


def _scan_new_version(ctx: WorkerContext, item: ItemOutcome, dispatch: Dispatch) -> None:
    """Queue the item's current version for scanning in its connector's monitor job, as a change
    event would be (the original job's counts stay those of the files it enumerated). Its id is
    derived from the original request, so a redelivered action task queues it once."""
    task, settings = item.task, ctx.settings
    monitors = MonitorJobs(ctx.client, settings.jobs.monitor_roll_s, settings.jobs.retain_s)
    job_id = monitors.current(task.connector_uuid, task.connector_name)
    new = ScanTask(
        id=request_id_for(f"changed:{task.connector_uuid}", task.id), connector_uuid=task.connector_uuid,
        connector_name=task.connector_name, location=task.location, metainfo=task.metainfo,
        job_id=job_id, requested_action=task.requested_action,
    )  # fmt: skip
    ctx.jobs.ensure_all([(job_id, task.connector_uuid, task.connector_name, MONITOR)])
    if ctx.jobs.record_accepted(
        [new], settings.results_db.request_state_ttl_s, settings.jobs.redispatch_after_s
    ):
        dispatch.rescan([new], 0.0)
    log.info(
        "action on %s skipped: the object changed since its scan; its new version is queued",
        task.location, extra={"request_id": task.id, "job_id": job_id},
    )  # fmt: skip
