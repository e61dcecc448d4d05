"""The unchanged-object index: when an entry is fresh, what a hit records, identity probing, and
both stores (real Redis, real SQLite) answering a batch."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import redis

from dsx_connect import keys
from dsx_connect.cache.identity import ScannerIdentity, identity_of, version_url_for
from dsx_connect.cache.index import Entry, cached_verdict, fresh
from dsx_connect.cache.settings import ScanCacheSettings
from dsx_connect.cache.sql import SqlIndex
from dsx_connect.cache.step import ScanCache
from dsx_connect.db.engine import make_engine
from dsx_connect.db.migrate import upgrade
from dsx_connect.state.jobs import JobStore
from dsx_connect.state.results import ResultStore
from dsx_connect.state.scan_cache import RedisIndex
from dsx_connect.workers.outcome import ConnectorRef, ItemOutcome
from shared.models import DsxaFileInfo, DsxaVerdict, ItemActionType, ScanTask
from tests.support.redis_db import flushed_db

SHA = "a" * 64


def verdict(name: str = "Benign", identity: str | None = "id-1") -> DsxaVerdict:
    extra = {"engine_version": identity} if identity else {}
    return DsxaVerdict.model_validate(
        {"scan_guid": "g1", "verdict": name, "file_info": DsxaFileInfo(file_hash=SHA, file_size_in_bytes=5),
         "scan_duration_in_microseconds": 120, "X-Custom-Metadata": "file-loc:x", **extra}
    )  # fmt: skip


def entry(version: str = "v1", identity: str = "id-1", name: str = "Benign") -> Entry:
    return Entry.of(version, identity, verdict(name, identity))


@pytest.mark.unit
def test_an_entry_is_fresh_only_when_version_identity_and_verdict_all_qualify() -> None:
    good = entry()
    assert fresh(good, "v1", "id-1")
    assert not fresh(good, "v2", "id-1")  # the object changed
    assert not fresh(good, "v1", "id-2")  # the rules changed
    assert not fresh(good, "v1", None)  # identity unknown: the cache is off
    assert not fresh(good, None, "id-1")  # the connector listed no version
    assert not fresh(None, "v1", "id-1")
    assert fresh(entry(name="Malicious"), "v1", "id-1")  # served, and acted on again (test_step)
    for name in ("Not Scanned", "Unknown", "Non Compliant", "Unsupported File Type"):
        assert not fresh(entry(name=name), "v1", "id-1"), name


@pytest.mark.unit
def test_an_entry_round_trips_without_the_request_echo_and_a_damaged_one_is_a_miss() -> None:
    stored = entry()
    assert "X-Custom-Metadata" not in stored.dump() and "x_custom_metadata" not in stored.dump()
    assert Entry.load(stored.dump()) == stored
    assert Entry.load("{not json") is None and Entry.load('{"v": "x"}') is None and Entry.load(None) is None


@pytest.mark.unit
def test_an_entry_made_from_an_answer_keeps_its_json_and_equals_the_dict_form_read_back() -> None:
    """Entries made from answers carry pydantic's JSON of the verdict (what the stores write);
    entries read back carry a dict. Both are the same entry, and either form gives the other."""
    made = entry()
    kept = {"scan_guid": "g1", "verdict": "Benign", "verdict_details": {"event_description": "", "reason": "",
            "threat_type": None}, "file_info": {"file_type": "", "file_size_in_bytes": 5, "file_hash": SHA}}  # fmt: skip
    assert made.verdict == kept and made.sha256 == SHA
    as_dict = Entry(made.version, made.sha256, made.identity, kept, made.at)
    assert as_dict == made and as_dict.verdict_json == made.verdict_json
    assert Entry(made.version, made.sha256, made.identity, None, made.at, text=made.verdict_json) == made
    assert Entry.load(as_dict.dump()) == Entry.load(made.dump()) == made
    with pytest.raises(ValueError, match="needs its verdict"):
        Entry("v", SHA, "id", None, 0.0)
    for damaged in ("{not json", "[1, 2]", '"Benign"'):  # a damaged row is a miss, never an error
        read_back = Entry(made.version, made.sha256, made.identity, None, made.at, text=damaged)
        assert read_back.verdict == {} and not fresh(read_back, made.version, made.identity)


@pytest.mark.unit
def test_a_hit_records_the_stored_verdict_marked_cached_under_the_current_identity() -> None:
    hit = cached_verdict(entry(name="Malicious"), "id-1")
    outcome = ItemOutcome(
        task=ScanTask(id="r1", connector_uuid="c", location="a.txt", job_id="j"),
        connector=ConnectorRef(uuid="c", name="fs"), verdict=hit,
    )  # fmt: skip
    event = outcome.event_dict("2026-12-04T00:00:00Z")
    assert event["scanner"] == {"scan_guid": "g1", "duration_us": 0, "engine_version": "id-1", "cached": True}
    assert event["verdict"] == "Malicious" and event["file_info"]["sha256"] == SHA


@pytest.mark.unit
def test_identity_is_asked_once_per_ttl_and_again_at_once_when_an_answer_names_another() -> None:
    now = [100.0]
    answers: list[object] = [
        {"identity": "A"},
        {"identity": "B"},
        {"identity": "B"},
        {"engine_version": "4.1"},
    ]
    calls: list[int] = []

    def fetch() -> object:
        calls.append(1)
        return answers.pop(0)

    identity = ScannerIdentity(fetch, ttl_s=5.0, clock=lambda: now[0])
    assert identity.current() == "A" and identity.current() == "A" and len(calls) == 1
    identity.observe("A")
    assert identity.current() == "A" and len(calls) == 1
    # another identity in a scan answer (a reload, or a late answer of the rules before one): the
    # scanner is asked again at once, the answer's identity is not taken as is
    identity.observe("C")
    assert identity.current() == "B" and len(calls) == 2
    now[0] += 6
    assert identity.current() == "B" and len(calls) == 3
    now[0] += 6
    assert identity.current() is None  # a scanner without an identity: nothing served from cache
    identity.observe("4.1")  # its answers' engine_version does not give it one
    assert identity.current() is None and len(calls) == 4


@pytest.mark.unit
def test_an_unreachable_scanner_has_no_identity() -> None:
    def fetch() -> object:
        raise httpx.ConnectError("refused")

    assert ScannerIdentity(fetch, ttl_s=1.0).current() is None
    assert identity_of({"identity": " "}) is None and identity_of(["x"]) is None
    assert version_url_for("https://scanner:5000/scan/binary/v2") == "https://scanner:5000/version"


@pytest.fixture
def client(redis_url: str) -> Iterator[redis.Redis]:
    with flushed_db(redis_url, 7) as conn:
        yield conn


@pytest.fixture(params=["redis", "sqlite", "postgresql"])
def store(
    request: pytest.FixtureRequest, client: redis.Redis, tmp_path: Path
) -> Iterator[RedisIndex | SqlIndex]:
    if request.param == "redis":
        yield RedisIndex(client, max_entries=100)
        return
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'history.db'}"
    else:
        from tests.support.postgres import create_database

        url = create_database(request.getfixturevalue("postgres_url"))
    upgrade(url)
    engine = make_engine(url)
    yield SqlIndex(engine, client)
    engine.dispose()


@pytest.mark.integration
def test_a_store_answers_a_batch_and_the_jobs_started_with_force(
    store: RedisIndex | SqlIndex, client: redis.Redis
) -> None:
    jobs = JobStore(client)
    plain, forced = jobs.create("c1"), jobs.create("c1", force=True)
    store.record([(("c1", "a.txt"), entry("v1")), (("c2", "a.txt"), entry("v9"))])
    store.record([(("c1", "a.txt"), entry("v2"))])  # a later scan replaces the entry
    found, flagged = store.lookup([("c1", "a.txt"), ("c1", "b.txt"), ("c2", "a.txt")], [plain, plain, plain])
    assert [e.version if e else None for e in found] == ["v2", None, "v9"]
    assert flagged == set()
    found, flagged = store.lookup([("c1", "a.txt"), ("c2", "a.txt")], [forced, plain])
    assert [e.version if e else None for e in found] == [None, "v9"]  # a forced job's items: no entry
    assert flagged == {forced}
    assert (jobs.get(forced) or {})["force"] is True and (jobs.get(plain) or {})["force"] is False


@pytest.mark.integration
def test_the_redis_index_stays_within_its_bound(client: redis.Redis) -> None:
    index = RedisIndex(client, max_entries=100)
    for start in range(0, 250, 50):
        index.record([(("c1", f"f{n}"), entry()) for n in range(start, start + 50)])
    assert client.hlen("dsxc:cache:idx:c1") == 100


def task(n: int, job: str, version: str | None = "v1") -> tuple[ScanTask, ConnectorRef]:
    return (
        ScanTask(id=f"r{n}", connector_uuid="c1", location=f"f{n}.txt", job_id=job, item_version=version),
        ConnectorRef(uuid="c1", name="fs", url="http://127.0.0.1:1/fs", item_action=ItemActionType.MOVE),
    )


@pytest.mark.integration
def test_split_serves_unchanged_items_and_remember_keeps_only_clean_or_malicious_verdicts(
    store: RedisIndex | SqlIndex, client: redis.Redis
) -> None:
    probe = {"identity": "id-1"}
    identity = ScannerIdentity(lambda: probe, ttl_s=60)
    cache = ScanCache(ScanCacheSettings(), store, identity)
    job = JobStore(client).create("c1")
    scanned = [
        ItemOutcome(task=task(1, job)[0], connector=task(1, job)[1], verdict=verdict("Benign"), item_version="v1"),
        ItemOutcome(task=task(2, job)[0], connector=task(2, job)[1], verdict=verdict("Malicious"), item_version="v1"),
        ItemOutcome(task=task(3, job)[0], connector=task(3, job)[1], verdict=verdict("Not Scanned"), item_version="v1"),
        ItemOutcome(task=task(4, job)[0], connector=task(4, job)[1], verdict=verdict("Benign")),  # no version read
    ]  # fmt: skip
    cache.remember(scanned)
    rescan = [task(1, job), task(2, job), task(3, job), task(4, job), task(5, job), task(6, job, None)]
    hits, rest = cache.split(rescan)
    assert [h.task.location for h in hits] == ["f1.txt", "f2.txt"]
    assert [t.location for t, _ in rest] == ["f3.txt", "f4.txt", "f5.txt", "f6.txt"]
    malicious = hits[1]
    assert malicious.needs_action(["Malicious"]) and malicious.item_version == "v1"  # acted on again
    # a new identity (a rules reload seen in a scan answer, then asked): nothing is fresh any more
    probe["identity"] = "id-2"
    identity.observe("id-2")
    assert cache.split(rescan)[0] == []
    # force: the job's items are all scanned
    forced = JobStore(client).create("c1", force=True)
    probe["identity"] = "id-1"
    identity.observe("id-1")
    assert cache.split([task(1, forced)])[0] == []


@pytest.mark.integration
def test_a_cached_result_is_counted_in_the_job_and_stats_as_cached_without_bytes(client: redis.Redis) -> None:
    jobs = JobStore(client)
    job = jobs.create("c1")
    t, ref = task(1, job)
    hit = ItemOutcome(task=t, connector=ref, verdict=cached_verdict(entry(), "id-1"))
    fresh_one = ItemOutcome(task=task(2, job)[0], connector=ref, verdict=verdict())
    results = ResultStore(client, retain=100)
    assert results.store_many([hit.event_dict("t"), fresh_one.event_dict("t")]) == [True, True]
    assert results.store_many([hit.event_dict("t")]) == [False]  # redelivered: counted once
    view = jobs.get(job) or {}
    assert view["cached"] == 1 and view["processed"] == 2 and view["bytes_scanned"] == 5
    assert results.stats()["cached"] == 1
    assert client.hget(keys.job(job), "cached") == "1"


@pytest.mark.unit
def test_the_cache_settings_load_from_the_environment_and_a_bad_value_names_its_variable(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from types import SimpleNamespace

    from dsx_connect.cache.step import scan_cache
    from dsx_connect.settings import Settings
    from shared.settings import SettingsError, load_settings

    monkeypatch.setenv("DSXCONNECT_SCAN_CACHE__ENABLED", "false")
    monkeypatch.setenv("DSXCONNECT_SCAN_CACHE__IDENTITY_TTL_S", "2")
    settings = load_settings(Settings)
    assert settings.scan_cache.enabled is False and settings.scan_cache.identity_ttl_s == 2
    assert scan_cache(SimpleNamespace(settings=settings)) is None  # type: ignore[arg-type]
    monkeypatch.setenv("DSXCONNECT_SCAN_CACHE__IDENTITY_TTL_S", "-1")
    with pytest.raises(SettingsError, match="DSXCONNECT_SCAN_CACHE__IDENTITY_TTL_S"):
        load_settings(Settings)


@pytest.mark.integration
def test_an_entry_whose_hash_is_not_a_sha256_is_recorded_without_it(
    store: RedisIndex | SqlIndex, client: redis.Redis
) -> None:
    """A scanner reporting another hash (longer than the column) must not fail the batch it is in."""
    odd = verdict()
    odd.file_info.file_hash = "md5:" + "b" * 100
    store.record([(("c1", "odd.txt"), Entry.of("v1", "id-1", odd)), (("c1", "ok.txt"), entry("v1"))])
    found, _ = store.lookup([("c1", "odd.txt"), ("c1", "ok.txt")], [JobStore(client).create("c1")] * 2)
    assert [e.version if e else None for e in found] == ["v1", "v1"]
    assert found[1] is not None and found[1].sha256 == SHA


@pytest.mark.integration
def test_an_entry_whose_location_is_too_long_to_index_never_fails_the_batch(
    store: RedisIndex | SqlIndex, client: redis.Redis
) -> None:
    """PostgreSQL refuses a primary-key entry over about 2,704 bytes, and the whole batch with it:
    nothing of it was remembered, so a rescan read every file of it again. Such a location is not
    remembered there (it is scanned again, as with the cache off); the rest of its batch is."""
    long = "docs/" + "".join(chr(0x4E00 + n * 7919 % 20000) for n in range(1000))  # 3,005 bytes
    store.record(
        [(("c1", "a.txt"), entry("v1")), (("c1", long), entry("v1")), (("c1", "b.txt"), entry("v1"))]
    )
    found, _ = store.lookup(
        [("c1", "a.txt"), ("c1", long), ("c1", "b.txt")], [JobStore(client).create("c1")] * 3
    )
    remembered_long = not (isinstance(store, SqlIndex) and store.engine.dialect.name == "postgresql")
    assert [e is not None for e in found] == [True, remembered_long, True]


@pytest.mark.integration
def test_a_damaged_sql_entry_is_a_miss_and_never_fails_the_split(client: redis.Redis, tmp_path: Path) -> None:
    """A row whose verdict is not JSON (edited by hand, a bad restore): its item is scanned again;
    the batch's other items are still served."""
    url = f"sqlite:///{tmp_path / 'history.db'}"
    upgrade(url)
    engine = make_engine(url)
    store = SqlIndex(engine, client)
    cache = ScanCache(ScanCacheSettings(), store, ScannerIdentity(lambda: {"identity": "id-1"}, ttl_s=60))
    job = JobStore(client).create("c1")
    store.record([(("c1", "f1.txt"), entry()), (("c1", "f2.txt"), entry())])
    with engine.begin() as conn:
        conn.exec_driver_sql("UPDATE scan_cache SET verdict = '{not json' WHERE location = 'f2.txt'")
    hits, rest = cache.split([task(1, job), task(2, job)])
    assert [h.task.location for h in hits] == ["f1.txt"] and [t.location for t, _ in rest] == ["f2.txt"]
    engine.dispose()


def _outcome(n: int, job: str, answered: str | None) -> ItemOutcome:
    t, ref = task(n, job)
    return ItemOutcome(task=t, connector=ref, verdict=verdict("Benign", answered), item_version="v1")


@pytest.mark.integration
def test_a_scanner_without_an_identity_is_served_nothing_whatever_its_answers_carry(
    client: redis.Redis,
) -> None:
    """A real DSXA: ``/version`` names no identity, its answers carry an ``engine_version`` (a build,
    which a rules or model update may keep). Nothing is recorded or served (an answer once made the
    identity known, and every later batch was served until the TTL ran out)."""
    store = RedisIndex(client, 1000)
    cache = ScanCache(ScanCacheSettings(), store, ScannerIdentity(lambda: {"version": "4.1"}, ttl_s=60))
    job = JobStore(client).create("c1")
    assert cache.split([task(1, job)])[0] == []
    cache.remember([_outcome(1, job, "4.1")], scanned_under=None)
    assert cache.split([task(1, job)])[0] == []
    assert store.lookup([("c1", "f1.txt")], [job])[0] == [None]


@pytest.mark.integration
def test_an_answer_of_rules_since_replaced_neither_brings_them_back_nor_is_recorded(
    client: redis.Redis,
) -> None:
    """A batch scanned across a reload holds answers of both rule sets, in item order. The old
    rules' answer must not make the old identity current again (it did: its entries were served
    until the TTL ran out), and only what the current rules answered is recorded."""
    probe = {"identity": "new"}
    store = RedisIndex(client, 1000)
    cache = ScanCache(ScanCacheSettings(), store, ScannerIdentity(lambda: probe, ttl_s=60))
    job = JobStore(client).create("c1")
    assert cache.identity.current() == "new"
    cache.remember([_outcome(1, job, "new"), _outcome(2, job, "old")], scanned_under="old")
    assert cache.identity.current() == "new"
    hits, rest = cache.split([task(1, job), task(2, job)])
    assert [h.task.location for h in hits] == ["f1.txt"] and [t.location for t, _ in rest] == ["f2.txt"]
    assert store.lookup([("c1", "f2.txt")], [job])[0] == [None]


@pytest.mark.integration
def test_an_answer_without_an_identity_is_recorded_only_if_the_rules_did_not_change_meanwhile(
    client: redis.Redis,
) -> None:
    probe = {"identity": "before"}
    cache = ScanCache(ScanCacheSettings(), RedisIndex(client, 1000), ScannerIdentity(lambda: probe, ttl_s=0))
    job = JobStore(client).create("c1")
    probe["identity"] = "after"  # a reload while the batch was scanned
    cache.remember([_outcome(1, job, None)], scanned_under="before")
    assert cache.split([task(1, job)])[0] == []
    cache.remember([_outcome(1, job, None)], scanned_under="after")
    assert [h.task.location for h in cache.split([task(1, job)])[0]] == ["f1.txt"]


@pytest.mark.integration
def test_an_entry_this_version_cannot_read_and_a_probe_that_raises_are_misses(client: redis.Redis) -> None:
    """The cache never fails a scan: an entry whose verdict no longer validates is scanned again
    (the batch's other items still served), and a version URL httpx refuses means no identity."""
    store = RedisIndex(client, 1000)
    cache = ScanCache(ScanCacheSettings(), store, ScannerIdentity(lambda: {"identity": "id-1"}, ttl_s=60))
    job = JobStore(client).create("c1")
    good = entry()
    unreadable = {**good.verdict, "protected_entity": "yes"}  # an int field: another model version's entry
    bad = Entry(good.version, good.sha256, good.identity, unreadable, good.at)
    store.record([(("c1", "f1.txt"), good), (("c1", "f2.txt"), bad)])
    hits, rest = cache.split([task(1, job), task(2, job)])
    assert [h.task.location for h in hits] == ["f1.txt"] and [t.location for t, _ in rest] == ["f2.txt"]

    def bad_url() -> object:
        return httpx.get("http://[::1/version")

    assert ScannerIdentity(bad_url, ttl_s=60).current() is None
