"""Guarded actions, the core's side (shared/item_version.py): the version a read answered travels with
the verdict and goes out with ``item_action``; a 412 ``item_changed`` touches nothing, is recorded as
skipped, and queues the new version for scanning; a gone item is a typed outcome.

The connector here is a stand-in that follows the contract of shared/item_version.py to the letter
(tests/dsx_connect/workers/standins.py, served by uvicorn, real HTTP); Redis is the session's real one.
"""

from __future__ import annotations

import asyncio
import time

import pytest
import redis

from dsx_connect import keys
from dsx_connect.connector_client import AnswerKind, classify
from dsx_connect.settings import Settings
from dsx_connect.state.connectors import ConnectorRegistry
from dsx_connect.workers import hot_path
from dsx_connect.workers.actions import CHANGED_MESSAGE, action_in_progress_s, run_action_batch
from dsx_connect.workers.hot_path import ScanConfig
from dsx_connect.workers.http1 import HttpPool
from dsx_connect.workers.outcome import ConnectorRef, ItemOutcome
from shared.item_version import ITEM_VERSIONS_HEADER
from shared.models import ConnectorInstance, DsxaVerdict, ItemActionType, ScanTask, VerdictDetails
from tests.dsx_connect.workers.standins import Sent, Storage, context

pytestmark = pytest.mark.integration


def malicious(url: str, location: str, version: str | None) -> ItemOutcome:
    task = ScanTask(
        id=f"req-{location}", connector_uuid="c1", location=location, metainfo=location, job_id="j1"
    )
    return ItemOutcome(
        task=task,
        connector=ConnectorRef(uuid="c1", name="contract", url=url, item_action=ItemActionType.DELETE),
        verdict=DsxaVerdict(verdict="Malicious", verdict_details=VerdictDetails()),
        item_version=version,
    )


def test_the_version_a_read_answers_is_captured_under_the_request_id(storage: tuple[Storage, str]) -> None:
    store, url = storage
    store.items["a.txt"] = (b"alpha", "dev:ino:5:111")
    task = ScanTask(id="r-a", connector_uuid="c1", location="a.txt", metainfo="a.txt", job_id="j1")
    versions: dict[str, str] = {}

    async def read() -> None:
        pool = HttpPool()
        try:
            # the scanner is unreachable: the read happened, its version was seen
            with pytest.raises(Exception, match="scan"):
                await hot_path.scan_item(pool, task, ConnectorRef(uuid="c1", url=url), CFG, None, versions)
        finally:
            pool.close()

    asyncio.run(read())
    assert versions == {"r-a": "dev:ino:5:111"}


CFG = ScanConfig(
    scan_url="http://127.0.0.1:9/scan/binary/v2", auth_token=None, protected_entity=1, scanner_timeout_s=2,
    connector_timeout_s=2, connect_timeout_s=1, max_file_size_bytes=1 << 30,
)  # fmt: skip


@pytest.mark.unit
def test_read_files_versions_header_is_one_entry_per_item_or_ignored() -> None:
    assert hot_path._versions_of('["v1", null, "v3"]', 3) == ["v1", None, "v3"]
    assert hot_path._versions_of('["v1"]', 3) == [None, None, None]  # wrong length: not trusted
    assert hot_path._versions_of("not json", 2) == [None, None]
    assert hot_path._versions_of(None, 1) == [None]
    assert hot_path._versions_of('["' + "x" * 300 + '"]', 1) == [None]  # past MAX_VERSION_CHARS
    assert hot_path._versions_of("[" * 100_000, 2) == [None, None]  # nested past the parser's depth
    assert ITEM_VERSIONS_HEADER == "X-Item-Versions"


@pytest.mark.unit
def test_classify_is_the_one_error_map() -> None:
    assert classify(200) is AnswerKind.OK
    assert classify(404, b'{"error": "not_found"}') is AnswerKind.GONE
    assert classify(404) is AnswerKind.GONE  # a 1.x connector: no error field, the status decides
    assert classify(412, b'{"error": "item_changed"}') is AnswerKind.CHANGED
    assert classify(412, {"detail": {"error": "item_changed"}}) is AnswerKind.CHANGED
    assert classify(412, b'{"message": "item changed"}') is AnswerKind.REFUSED  # text never decides
    assert classify(400) is AnswerKind.REFUSED and classify(403) is AnswerKind.REFUSED
    for status in (401, 408, 429, 500, 502, 503):
        assert classify(status) is AnswerKind.UNAVAILABLE


@pytest.fixture(autouse=True)
def registered(request: pytest.FixtureRequest, client: redis.Redis) -> None:
    """The stand-in connector ``c1`` registered at its URL: the action step calls the registry's address."""
    if "storage" in request.fixturenames:
        _store, url = request.getfixturevalue("storage")
        ConnectorRegistry(client, 180).register(ConnectorInstance(uuid="c1", name="contract", url=url))


def test_an_unchanged_item_is_acted_on_with_its_version(
    storage: tuple[Storage, str], client: redis.Redis
) -> None:
    store, url = storage
    store.items["bad.com"] = (b"x", "v1")
    sent = Sent()
    run_action_batch(
        context(client, Settings()), [malicious(url, "bad.com", "v1")], sent.dispatch(), lambda *_: None
    )
    assert store.deleted == ["bad.com"] and store.actions[0]["item_version"] == "v1"
    (done,) = sent.stored
    assert done.action is not None and done.action.applied and done.action.status == "success"


def test_an_item_replaced_after_its_scan_is_not_touched_and_its_new_version_is_scanned(
    storage: tuple[Storage, str], client: redis.Redis
) -> None:
    store, url = storage
    store.items["bad.com"] = (b"a new, unscanned file", "v2")  # replaced after the scan of v1
    ctx = context(client, Settings())
    item = malicious(url, "bad.com", "v1")
    sent = Sent()
    run_action_batch(ctx, [item], sent.dispatch(), lambda *_: None)
    assert store.deleted == [] and "bad.com" in store.items
    (done,) = sent.stored
    assert done.action is not None and not done.action.applied
    assert (done.action.status, done.action.message) == ("skipped", CHANGED_MESSAGE)
    (rescan,) = sent.rescanned
    assert rescan.location == "bad.com" and rescan.id != item.task.id and rescan.job_id != item.task.job_id
    job = ctx.jobs.get(rescan.job_id)
    assert job is not None and job["enqueued"] == 1 and job["kind"] == "monitor"  # as a change event

    # the same task delivered again: the recorded outcome stands, the connector is not asked again,
    # and the new version is queued once
    again = Sent()
    run_action_batch(ctx, [item], again.dispatch(), lambda *_: None)
    assert len(store.actions) == 1 and again.rescanned == []
    assert again.stored[0].action == done.action


def test_a_gone_item_is_a_typed_outcome(storage: tuple[Storage, str], client: redis.Redis) -> None:
    _store, url = storage
    ctx = context(client, Settings())
    sent = Sent()
    run_action_batch(ctx, [malicious(url, "gone.com", "v1")], sent.dispatch(), lambda *_: None)
    (done,) = sent.stored
    assert done.action is not None and not done.action.applied and done.action.status == "error"
    # an earlier attempt whose answer was lost left its claim: finding the item gone means it acted
    client.set(keys.action_done("req-again.com"), "pending")
    sent = Sent()
    run_action_batch(ctx, [malicious(url, "again.com", "v1")], sent.dispatch(), lambda *_: None)
    (done,) = sent.stored
    assert (
        done.action is not None
        and done.action.applied
        and done.action.message == "applied by an earlier attempt"
    )


def test_the_action_goes_to_the_registered_address_never_the_messages(
    storage: tuple[Storage, str], client: redis.Redis
) -> None:
    """A dead letter requeued days after its scan carries the connector's address of that day; the
    action step called it even after the connector was unregistered or had moved."""
    store, url = storage
    store.items["bad.com"] = (b"x", "v1")
    ctx = context(client, Settings())
    stale = malicious("http://127.0.0.1:9/c", "bad.com", "v1")  # where the connector used to be
    sent = Sent()
    run_action_batch(ctx, [stale], sent.dispatch(), lambda *_: None)
    assert store.deleted == ["bad.com"]  # asked at the registered address
    (done,) = sent.stored
    assert done.action is not None and done.action.applied

    ConnectorRegistry(client, 180).unregister("c1")
    store.items["worse.com"] = (b"x", "v1")
    item = malicious(url, "worse.com", "v1")
    later: list[ItemOutcome] = []
    unregistered = context(client, Settings())
    run_action_batch(unregistered, [item], Sent().dispatch(), lambda items, _delay: later.extend(items))
    assert len(store.actions) == 1 and "worse.com" in store.items  # no call at all
    (retry,) = later  # retried (a restarting connector comes back), then a dead letter
    last = retry.model_copy(update={"action_attempt": unregistered.settings.workers.max_retries})
    gone = Sent()
    run_action_batch(unregistered, [last], gone.dispatch(), lambda *_: None)
    (refused,) = gone.stored
    assert refused.action is not None and not refused.action.applied and refused.action.status == "error"
    assert "not registered" in refused.action.message and len(store.actions) == 1
    (letter,) = unregistered.dead_letters.peek([item.task.id])
    assert letter.stage == "action"


def test_a_second_copy_waits_for_the_attempt_in_progress_and_a_retry_keeps_its_claim(
    storage: tuple[Storage, str], client: redis.Redis
) -> None:
    """Two copies of one item (a letter requeued twice, a redelivery) taken at once both asked the
    connector: a fresh pending claim read as "cut off by a crash". And the slower copy's failure
    released the claim the other held, erasing the record that the action was applied."""
    store, url = storage
    store.items["bad.com"] = (b"x", "v1")
    ctx = context(client, Settings())
    item = malicious(url, "bad.com", "v1")
    other = f"pending:{time.time():.3f}:other-worker"  # another copy is asking the connector now
    client.set(keys.action_done(item.task.id), other)
    later: list[tuple[list[ItemOutcome], float]] = []
    run_action_batch(ctx, [item], Sent().dispatch(), lambda items, delay: later.append((items, delay)))
    assert store.actions == [] and client.get(keys.action_done(item.task.id)) == other
    ((waiting, delay),) = later
    assert [i.task.id for i in waiting] == [item.task.id] and delay == action_in_progress_s(ctx)

    # that attempt was cut off (its claim is older than an action can take): taken over, and asked
    client.set(keys.action_done(item.task.id), f"pending:{time.time() - 10 * delay:.3f}:crashed")
    store.unavailable = 1  # the first answer is a 503: retried, keeping the claim
    retried: list[ItemOutcome] = []
    run_action_batch(ctx, [item], Sent().dispatch(), lambda items, _delay: retried.extend(items))
    (again,) = retried
    held = client.get(keys.action_done(item.task.id))
    assert held is not None and held.startswith("pending:") and again.action_claim == held
    sent = Sent()
    run_action_batch(ctx, [again], sent.dispatch(), lambda *_: None)  # the retry goes at once: its claim
    assert store.deleted == ["bad.com"] and len(store.actions) == 2
    (done,) = sent.stored
    assert done.action is not None and done.action.applied


def test_a_task_retried_or_redelivered_takes_up_its_own_claim_at_once(
    storage: tuple[Storage, str], client: redis.Redis
) -> None:
    """A task retried after a Redis error (a failover: Celery retries it under the same id) or
    redelivered after its worker died found its own fresh claim and waited twice the connector's
    timeout for "the attempt in progress", itself: a failover mid-scan outlasted the job's settling."""
    store, url = storage
    store.items["bad.com"] = (b"x", "v1")
    item = malicious(url, "bad.com", "v1")
    client.set(keys.action_done(item.task.id), f"pending:{time.time():.3f}:task-7")  # its first try's claim
    later: list[ItemOutcome] = []
    sent = Sent()
    run_action_batch(
        context(client, Settings()), [item], sent.dispatch(), lambda i, _d: later.extend(i), attempt="task-7"
    )
    assert later == [] and store.deleted == ["bad.com"]
    (done,) = sent.stored
    assert done.action is not None and done.action.applied


def test_a_failed_attempt_releases_only_its_own_claim(client: redis.Redis) -> None:
    from dsx_connect.state.actions import ActionClaims

    claims = ActionClaims(client)
    mine = claims.claim("req-release")
    assert mine.token is not None
    client.set(keys.action_done("req-release"), "pending:1:someone-else")  # taken over meanwhile
    claims.release("req-release", mine.token)
    assert client.get(keys.action_done("req-release")) == "pending:1:someone-else"
    claims.release("req-release", "pending:1:someone-else")
    assert client.get(keys.action_done("req-release")) is None
