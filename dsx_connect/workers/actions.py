"""Verdict action step: ask the connector to delete, move or tag a malicious item, exactly once."""

from __future__ import annotations

import json
import logging
from collections.abc import Callable

import httpx

from dsx_connect import keys
from dsx_connect.dlq.store import DeadLetter
from dsx_connect.workers.context import WorkerContext
from dsx_connect.workers.hot_path import connector_error, read_file_body
from dsx_connect.workers.outcome import ItemOutcome
from dsx_connect.workers.scan import Dispatch
from shared.errors import DsxError, RetryableError
from shared.models import EventAction

log = logging.getLogger(__name__)

ACTION_RECORD_TTL_S = 7 * 86400
PENDING = "pending"


def action_gone(action: EventAction) -> bool:
    """Whether a failed action says the item is no longer at its location (the connector's 404)."""
    return "not found" in action.message.lower()


def run_action_batch(
    ctx: WorkerContext,
    items: list[ItemOutcome],
    dispatch: Dispatch,
    requeue: Callable[[list[ItemOutcome], float], None],
) -> None:
    done: list[ItemOutcome] = []
    retry: list[ItemOutcome] = []
    dead: list[DeadLetter] = []
    for item in items:
        uncertain = False  # an attempt may have reached the connector: its outcome is unknown
        key = keys.action_done(item.task.id)
        # Claim the action; a claim already there is a finished action, or one cut off by a crash.
        claimed = ctx.jobs.redis.set(key, PENDING, nx=True, ex=ACTION_RECORD_TTL_S)
        recorded = None if claimed else ctx.jobs.redis.get(key)
        if recorded is not None and recorded != PENDING:  # a redelivered task: the connector already acted
            done.append(item.model_copy(update={"action": EventAction.model_validate_json(recorded)}))
            continue
        try:
            action = apply_action(ctx, item)
            if recorded == PENDING and not action.applied and action_gone(action):
                # An earlier attempt was cut off (worker crash) after asking the connector: the item
                # is no longer where it was, so that attempt applied the action.
                action = action.model_copy(
                    update={"applied": True, "status": "success", "message": "applied by an earlier attempt"}
                )
        except RetryableError as exc:
            if item.action_attempt < ctx.settings.workers.max_retries:
                retry.append(item.model_copy(update={"action_attempt": item.action_attempt + 1}))
                log.warning(
                    "action on %s will be retried: %s",
                    item.task.location,
                    exc.message,
                    extra={"request_id": item.task.id},
                )
                continue
            uncertain = True
            action = EventAction(
                requested=item.planned_action().value,
                status="error",
                message=f"gave up after {item.action_attempt + 1} attempts: {exc.message}",
            )
            dead.append(
                DeadLetter(
                    id=item.task.id, stage="action", reason=action.message, attempts=item.action_attempt + 1,
                    job_id=item.task.job_id, connector_uuid=item.connector.uuid, location=item.task.location,
                    payload=item.model_copy(update={"action_attempt": 0}).dump(),
                )
            )  # fmt: skip
        except DsxError as exc:
            action = EventAction(requested=item.planned_action().value, status="error", message=exc.message)
        if action.status != "error":  # applied (or refused for good): never ask the connector twice
            ctx.jobs.redis.set(key, action.model_dump_json(), ex=ACTION_RECORD_TTL_S)
        else:
            # Not applied: a requeue may try again. After attempts whose answers were lost, the claim
            # stays pending, so a requeued attempt that finds the item gone knows one of them acted.
            if not uncertain:
                ctx.jobs.redis.delete(key)
            log.warning(
                "action %s on %s failed: %s",
                action.requested,
                item.task.location,
                action.message,
                extra={"request_id": item.task.id},
            )
        done.append(item.model_copy(update={"action": action}))
    ctx.dead_letters.add_many(dead)
    if retry:
        requeue(retry, ctx.backoff(max(i.action_attempt for i in retry)))
    if done:
        dispatch.store(done)


def apply_action(ctx: WorkerContext, item: ItemOutcome) -> EventAction:
    """PUT the scan request to the connector's ``/item_action``; read the outcome from its ``status``."""
    body = read_file_body(item.task, item.connector)
    if item.task.requested_action is not None:
        body["requested_action"] = item.task.requested_action.model_dump(mode="json")
    requested = item.planned_action().value
    try:
        response = ctx.http.put(
            item.connector.url.rstrip("/") + "/item_action",
            json=body,
            auth=ctx.connector_auth(item.connector.uuid) or httpx.USE_CLIENT_DEFAULT,
        )
    except httpx.TransportError as exc:
        raise RetryableError(f"item_action: connector unreachable: {exc!r}") from None
    if response.status_code == 401:  # our signature was refused (a pair that just changed): retried
        ctx.signature_refused(item.connector.uuid)
    if response.status_code >= 500 or response.status_code in (401, 408, 429):
        raise connector_error(response.status_code, response.content, "item_action")
    try:
        answer = response.json()
    except json.JSONDecodeError:
        answer = {"status": "error", "message": response.text[:500]}
    status = str(answer.get("status", "error"))
    applied = response.status_code < 400 and status == "success"
    message = str(answer.get("message") or answer.get("description") or "")
    if response.status_code == 404 and "not found" not in message.lower():
        message = f"not found: {message}"
    if response.status_code >= 400 and status == "success":
        status = "error"
    return EventAction(
        requested=str(answer.get("item_action") or requested), applied=applied, status=status, message=message
    )
