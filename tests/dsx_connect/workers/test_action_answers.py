"""The verdict action's call to a connector that answers badly: an answer that never ends (fast or
trickling), fields that are not what the contract says, nesting past the JSON parser's depth; and
what a lost answer (rather than a refusal seen) lets a later attempt conclude from a 404.

The connector is scripted through httpx's mock transport on the worker context's client; the claims
are on the session's real Redis."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Iterator

import httpx
import pytest
import redis

from dsx_connect import keys
from dsx_connect.settings import Settings, WorkersSettings
from dsx_connect.state.connectors import ConnectorRegistry
from dsx_connect.workers import actions
from dsx_connect.workers.context import WorkerContext
from dsx_connect.workers.hot_path import connector_error
from dsx_connect.workers.outcome import ConnectorRef, ItemOutcome
from shared.errors import PermanentError, RetryableError
from shared.models import (
    ConnectorInstance,
    DsxaVerdict,
    EventAction,
    ItemActionType,
    ScanTask,
    VerdictDetails,
)
from tests.dsx_connect.workers.standins import Sent, context

pytestmark = pytest.mark.integration  # the registry and the claims are on the session's Redis

URL = "http://connector.test/c"
CAP = 64 * 1024
NESTED = b"[" * 4096  # deeper than the JSON parser goes: it raises RecursionError
Handler = Callable[[httpx.Request], httpx.Response]


def malicious(location: str = "bad.com", attempt: int = 0) -> ItemOutcome:
    task = ScanTask(
        id=f"req-{location}", connector_uuid="c1", location=location, metainfo=location, job_id="j1"
    )
    return ItemOutcome(
        task=task,
        connector=ConnectorRef(uuid="c1", name="contract", url=URL, item_action=ItemActionType.DELETE),
        verdict=DsxaVerdict(verdict="Malicious", verdict_details=VerdictDetails()),
        action_attempt=attempt,
    )


def scripted(client: redis.Redis, handler: Handler, connector_timeout_s: float = 5.0) -> WorkerContext:
    """A worker context whose connector ``c1`` is ``handler``."""
    ctx = context(client, Settings(workers=WorkersSettings(connector_timeout_s=connector_timeout_s)))
    ctx.http = httpx.Client(transport=httpx.MockTransport(handler))
    ConnectorRegistry(client, 180).register(ConnectorInstance(uuid="c1", name="contract", url=URL))
    return ctx


class Streamed(httpx.SyncByteStream):
    """A body as a network stream gives it (a mock's bytes would be read before the client streams)."""

    def __init__(self, data: bytes) -> None:
        self.data = data

    def __iter__(self) -> Iterator[bytes]:
        yield self.data


def answer(status: int, body: object = None, content: bytes | None = None) -> httpx.Response:
    data = content if content is not None else json.dumps(body).encode()
    return httpx.Response(status, headers={"Content-Type": "application/json"}, stream=Streamed(data))


class Endless(httpx.SyncByteStream):
    """An answer body that goes on (to ``total`` bytes, so that a client without a cap still ends),
    each piece after ``pace`` seconds; it records how much was taken and when it was let go."""

    def __init__(self, total: int, piece: int = 16 * 1024, pace: float = 0.0) -> None:
        self.total, self.piece, self.pace = total, piece, pace
        self.taken = 0
        self.closed = threading.Event()
        self.released = threading.Event()  # the test is over: stop pacing

    def __iter__(self) -> Iterator[bytes]:
        while self.taken < self.total:
            if self.pace and self.released.wait(self.pace):
                return
            self.taken += self.piece
            yield b" " * self.piece

    def close(self) -> None:
        self.closed.set()


def test_an_answer_that_never_ends_is_read_no_further_than_the_cap(client: redis.Redis) -> None:
    body = Endless(total=64 << 20)
    ctx = scripted(client, lambda _request: httpx.Response(200, stream=body))
    answered = actions.apply_action(ctx, malicious())
    assert body.taken <= CAP + body.piece  # it read 64 MiB whole, into memory
    assert actions.ANSWER_CAP == CAP
    assert answered.action.status == "error" and not answered.action.applied  # not a StatusResponse
    assert len(answered.action.message) <= actions.MESSAGE_CHARS


def test_an_answer_that_trickles_forever_is_given_up_at_the_deadline(client: redis.Redis) -> None:
    """httpx bounds each read, not the call: a connector sending a byte just inside each read
    timeout held the action step without end (here 5 s of trickle against a 1 s deadline)."""
    body = Endless(total=100, piece=1, pace=0.05)
    ctx = scripted(client, lambda _request: httpx.Response(200, stream=body), connector_timeout_s=1.0)
    begun = time.monotonic()
    try:
        try:
            actions.apply_action(ctx, malicious())
            raised: Exception | None = None
        except RetryableError as exc:
            raised = exc
        assert time.monotonic() - begun < 2.0
        assert (
            isinstance(raised, actions.OutcomeUnknown) and "no complete answer within 1 s" in raised.message
        )
        assert body.closed.wait(5.0)  # the abandoned exchange ends at its next piece
    finally:
        body.released.set()
    assert actions.action_deadline_s(ctx) == 1.0 < actions.action_in_progress_s(ctx)


def test_the_answers_fields_are_checked_before_they_are_stored(client: redis.Redis) -> None:
    answers = iter(
        [
            {"status": "success", "item_action": "rm -rf /", "message": "m" * 10_000},
            {"status": "<b>done</b>", "item_action": "move", "message": ["not", "text"]},
        ]
    )
    ctx = scripted(client, lambda _request: answer(200, next(answers)))
    (first,) = run(ctx, malicious("a.com"))[0]
    assert first.action == EventAction(requested="delete", applied=True, status="success", message="m" * 500)
    (second,) = run(ctx, malicious("b.com"))[0]
    assert second.action is not None
    assert (second.action.requested, second.action.status, second.action.applied) == ("move", "error", False)


def test_answers_nested_past_the_json_parsers_depth_are_errors_not_crashes(client: redis.Redis) -> None:
    """``classify`` and ``error_reason`` raise RecursionError on such a body: the action task died
    (and the read path took it for an internal error)."""
    statuses = iter([404, 412, 503])
    ctx = scripted(client, lambda _request: answer(next(statuses), content=NESTED))
    gone = actions.apply_action(ctx, malicious()).action
    assert gone.status == "error" and gone.message.startswith("not found")
    refused = actions.apply_action(ctx, malicious()).action
    assert refused.status == "error" and not refused.applied
    with pytest.raises(RetryableError):
        actions.apply_action(ctx, malicious())
    assert isinstance(connector_error(412, NESTED, "read_file"), PermanentError)


# ---- what a 404 after earlier attempts means


def run(ctx: WorkerContext, item: ItemOutcome) -> tuple[list[ItemOutcome], list[ItemOutcome]]:
    """One action task over ``item``: what it stored, and what it requeued."""
    sent = Sent()
    requeued: list[ItemOutcome] = []
    actions.run_action_batch(ctx, [item], sent.dispatch(), lambda items, _delay: requeued.extend(items))
    return sent.stored, requeued


def connector(*answers: httpx.Response | BaseException) -> tuple[Handler, list[httpx.Request]]:
    """Answers each ask with the next of ``answers`` (an exception is raised, as a lost answer)."""
    pending = list(answers)
    asked: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        asked.append(request)
        answer = pending.pop(0)
        if isinstance(answer, BaseException):
            raise answer
        return answer

    return handler, asked


def not_found() -> httpx.Response:
    return answer(404, {"status": "error", "error": "not_found", "message": "gone"})


def busy() -> httpx.Response:
    return answer(503, {"status": "error", "message": "busy"})


def test_a_404_after_a_refusal_seen_is_not_taken_for_an_earlier_attempts_success(client: redis.Redis) -> None:
    """A 503 answered (the connector did not act) kept the claim for the retry, and the retry's 404
    (the item deleted meanwhile by someone else) was recorded "applied by an earlier attempt"."""
    handler, asked = connector(busy(), not_found())
    ctx = scripted(client, handler)
    stored, (retry,) = run(ctx, malicious())
    assert stored == [] and retry.action_claim is not None  # the retry holds the claim meanwhile
    stored, _ = run(ctx, retry)
    (done,) = stored
    assert done.action is not None and not done.action.applied
    assert done.action.status == "error" and done.action.message.startswith("not found")
    assert len(asked) == 2


def test_a_404_after_an_answer_lost_is_an_earlier_attempts_success(client: redis.Redis) -> None:
    handler, _ = connector(httpx.ReadTimeout("no answer"), not_found())
    ctx = scripted(client, handler)
    _, (retry,) = run(ctx, malicious())
    stored, _ = run(ctx, retry)
    (done,) = stored
    assert done.action is not None and done.action.applied
    assert done.action.message == "applied by an earlier attempt"


def test_a_404_that_does_not_say_not_found_is_no_evidence_of_an_earlier_attempt(client: redis.Redis) -> None:
    """An earlier attempt was cut off (its claim left); the 404 now is a route the connector does
    not serve (a proxy, a wrong prefix), not the item's absence: it was recorded as applied."""
    handler, _ = connector(answer(404, {"detail": "Not Found"}))
    ctx = scripted(client, handler)
    item = malicious()
    client.set(keys.action_done(item.task.id), "pending")  # an attempt cut off after asking
    stored, _ = run(ctx, item)
    (done,) = stored
    assert done.action is not None and not done.action.applied and done.action.status == "error"


def test_giving_up_after_refusals_seen_releases_the_claim(client: redis.Redis) -> None:
    """Every attempt's answer was seen (the connector did not act): the claim is released, so a
    requeued letter's 404 later is not taken for this attempt's success. One lost answer keeps it."""
    ctx = scripted(client, connector(busy())[0])
    last = malicious(attempt=ctx.settings.workers.max_retries)
    stored, _ = run(ctx, last)
    assert stored[0].action is not None and stored[0].action.status == "error"
    assert client.get(keys.action_done(last.task.id)) is None

    ctx = scripted(client, connector(busy())[0])
    lost = last.model_copy(
        update={"action_uncertain": True, "task": last.task.model_copy(update={"id": "r2"})}
    )
    run(ctx, lost)
    held = client.get(keys.action_done("r2"))
    assert held is not None and held.startswith("pending:")


class Crash(BaseException):
    """The worker dies while asking (nothing in the step catches it)."""


def test_a_retry_cut_off_while_asking_leaves_its_redelivery_the_conclusion(client: redis.Redis) -> None:
    """A retry holds the claim its message carries; cut off while asking, its redelivery found that
    same claim, took itself for a retry whose earlier answers were all seen, and could not tell
    that the ask it lost had deleted the item."""
    handler, asked = connector(busy(), Crash(), not_found())
    ctx = scripted(client, handler)
    sent = Sent()
    retried: list[ItemOutcome] = []
    actions.run_action_batch(
        ctx, [malicious()], sent.dispatch(), lambda i, _d: retried.extend(i), attempt="t1"
    )
    (retry,) = retried
    with pytest.raises(Crash):  # the retry's delivery, cut off after the ask went out
        actions.run_action_batch(ctx, [retry], sent.dispatch(), lambda *_: None, attempt="t2")
    actions.run_action_batch(ctx, [retry], sent.dispatch(), lambda *_: None, attempt="t2")  # redelivered
    (done,) = sent.stored
    assert done.action is not None and done.action.applied
    assert done.action.message == "applied by an earlier attempt" and len(asked) == 3
