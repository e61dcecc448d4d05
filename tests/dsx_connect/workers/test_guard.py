"""``run_guarded`` through a real Celery task (run in-process with ``apply``) and the real Redis:
transient Redis errors retry the task, anything else or retries run out dead-letters every item
with the reason, and what cannot be dead-lettered is rejected *with* requeue (never acked away)."""

from __future__ import annotations

from typing import Any

import pytest
import redis
from celery import Celery, Task
from celery.exceptions import Reject

from dsx_connect.settings import Settings
from dsx_connect.state.dead_letters import DeadLetterStore
from dsx_connect.workers import guard
from dsx_connect.workers.outcome import ItemOutcome
from shared.models import ScanTask

pytestmark = pytest.mark.integration


class Ctx:
    """The two things run_guarded reads from a worker context."""

    def __init__(self, client: redis.Redis) -> None:
        self.settings = Settings()
        self.dead_letters = DeadLetterStore(client, 3600)


def items(n: int) -> list[dict[str, Any]]:
    return [
        ScanTask(id=f"g{i}", connector_uuid="c1", location=f"f{i}", job_id="jg").model_dump(mode="json")
        for i in range(n)
    ]


def make_task(client: redis.Redis, body: Any, stored: list[ItemOutcome]) -> Task:
    app = Celery("guard-test", broker="memory://")
    app.conf.task_always_eager = False

    @app.task(bind=True, name="guarded")
    def guarded(self: Task, batch: list[dict[str, Any]]) -> int:
        return guard.run_guarded(self, "scan", batch, lambda: body(self), lambda: Ctx(client), stored.extend)  # type: ignore[arg-type]

    return guarded  # type: ignore[no-any-return]


def test_a_transient_redis_error_retries_the_task(client: redis.Redis) -> None:
    calls: list[int] = []

    def body(task: Task) -> int:
        calls.append(int(task.request.retries or 0))
        if len(calls) < 3:
            raise redis.exceptions.ReadOnlyError("You can't write against a read only replica.")
        return 7

    stored: list[ItemOutcome] = []
    result = make_task(client, body, stored).apply(args=(items(2),))
    assert result.get() == 7 and calls == [0, 1, 2]
    assert DeadLetterStore(client, 3600).stats()["count"] == 0 and stored == []


def test_an_unexpected_error_dead_letters_every_item_with_a_failed_result(client: redis.Redis) -> None:
    def body(_task: Task) -> int:
        raise KeyError("a bug")

    stored: list[ItemOutcome] = []
    batch = [*items(3), {"not": "a scan task"}]
    make_task(client, body, stored).apply(args=(batch,)).get()
    letters, total = DeadLetterStore(client, 3600).items(limit=10)
    assert total == 4
    assert all(
        letter.stage == "scan" and "unexpected error in the scan step: KeyError" in letter.reason
        for letter in letters
    )
    assert {letter.id for letter in letters if letter.job_id == "jg"} == {"g0", "g1", "g2"}
    assert any(letter.id.startswith("unreadable-") for letter in letters)  # kept as it came
    assert sorted(o.task.id for o in stored) == ["g0", "g1", "g2"]
    assert all(o.error is not None and o.error.kind == "exhausted" for o in stored)


def test_retries_run_out_into_dead_letters(client: redis.Redis, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(guard, "TASK_MAX_RETRIES", 2)

    def body(_task: Task) -> int:
        raise redis.exceptions.ConnectionError("gone")

    make_task(client, body, []).apply(args=(items(2),)).get()
    letters, total = DeadLetterStore(client, 3600).items(limit=10)
    assert total == 2 and all(
        "gave up after 3 attempts on Redis/broker errors" in letter.reason for letter in letters
    )


def test_what_cannot_be_dead_lettered_is_requeued_not_acked(client: redis.Redis) -> None:
    def body(_task: Task) -> int:
        raise ValueError("a bug")

    class NoRedis(Ctx):
        def __init__(self, _client: redis.Redis) -> None:
            super().__init__(redis.Redis(port=1, socket_connect_timeout=0.2))

    app = Celery("guard-test-2", broker="memory://")

    @app.task(bind=True, name="guarded2")
    def guarded(self: Task, batch: list[dict[str, Any]]) -> int:
        return guard.run_guarded(self, "scan", batch, lambda: body(self), lambda: NoRedis(client))  # type: ignore[arg-type]

    result = guarded.apply(args=(items(1),))
    assert isinstance(result.result, Reject) and result.result.requeue is True


@pytest.mark.unit
def test_errors_from_inside_the_broker_client_are_transient() -> None:
    from kombu.transport import redis as kombu_redis

    class Closed:
        connection = None

    with pytest.raises(AttributeError) as raised:  # what kombu raises when Redis restarts under a publish
        kombu_redis.Channel._connparams(Closed())  # type: ignore[arg-type]
    assert guard.transient(raised.value)
    assert not guard.transient(KeyError("a bug in a step"))
    assert not guard.transient(redis.exceptions.ResponseError("WRONGTYPE Operation against a key"))
    assert guard.transient(redis.exceptions.ReadOnlyError("READONLY"))
