"""Inputs an attacker controls, against an in-process core on a real Redis (so a test can make a DNS
name resolve where it wants) and a connector app: SSRF by DNS name and by rebinding between
registration and call, the auth layer judging a header before it reads any body, refused signatures
rate-limited across API replicas, and the connector's nonce store refusing instead of forgetting."""

from __future__ import annotations

import json
import logging
import socket
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import anyio
import httpx
import pytest
import redis

from connectors.filesystem.connector import FilesystemConnector
from connectors.filesystem.settings import FilesystemSettings
from dsx_connect import keys
from dsx_connect.auth import deps as auth_deps
from dsx_connect.auth import urls
from dsx_connect.auth.middleware import AuthMiddleware
from dsx_connect.auth.settings import AuthSettings
from dsx_connect.auth.urls import AddressPolicy, connect_address
from dsx_connect.settings import get_settings
from dsx_connect.workers.http1 import HttpPool, target
from shared.connector import create_connector_app
from shared.errors import PermanentError
from shared.hmac_auth import Signer, parse_authorization
from tests.security.conftest import connector_body, core_environment, in_process_core
from tests.support.auth import (
    CONNECTOR_AUTH,
    CONNECTOR_KEY_ID,
    CONNECTOR_SECRET,
    ENROLLMENT_TOKEN,
    OPERATOR_KEY,
)
from tests.support.clock import wait_to_clear_window_end

pytestmark = [pytest.mark.integration, pytest.mark.anyio]

API = "/dsx-connect/api/v1"
FLEET = {"X-Enrollment-Token": ENROLLMENT_TOKEN}
NAMES: dict[str, list[str]] = {}


def fake_dns(host: str, port: int) -> list[str]:
    """The test's resolver: what :data:`NAMES` says, else 'no such name'."""
    if host not in NAMES:
        raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")
    return NAMES[host]


@pytest.fixture
def dns(monkeypatch: pytest.MonkeyPatch) -> Iterator[dict[str, list[str]]]:
    NAMES.clear()
    monkeypatch.setattr(urls, "RESOLVER", fake_dns)
    yield NAMES
    NAMES.clear()


@pytest.fixture
def core_redis(redis_url: str) -> Iterator[str]:
    db_url = redis_url.rsplit("/", 1)[0] + "/11"
    conn = redis.Redis.from_url(db_url)
    conn.flushdb()
    yield db_url
    conn.flushdb()
    conn.close()


@pytest.fixture
def replicas(core_redis: str) -> Iterator[tuple[Any, Any]]:
    """Two API replicas of one core (one Redis), failed signatures limited to 5 a minute per source."""
    with core_environment(DSXCONNECT_REDIS_URL=core_redis, DSXCONNECT_AUTH__FAILED_SIGNATURES_PER_MIN="5"):
        auth_deps._keys.cache_clear()
        urls._settings_policy.cache_clear()
        yield in_process_core(), in_process_core()
    auth_deps._keys.cache_clear()
    urls._settings_policy.cache_clear()


def client(app: Any, **kwargs: Any) -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://core" + API, **kwargs)


@pytest.fixture
def estimate_server() -> Iterator[tuple[int, list[str]]]:
    """A connector stand-in on 127.0.0.1 answering ``/estimate``; records the paths it is asked."""
    hits: list[str] = []

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            hits.append(self.path)
            body = b'{"count": 3, "bytes": 30}'
            self.send_response(200)
            self.send_header("content-type", "application/json")
            self.send_header("content-length", str(len(body)))
            self.send_header("connection", "close")  # every call opens a new connection (and is checked)
            self.end_headers()
            self.close_connection = True
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            return None

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield server.server_address[1], hits
    finally:
        server.shutdown()


# ---- SSRF by DNS name ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "address", ["169.254.169.254", "fd00:ec2::254", "64:ff9b::a9fe:a9fe", "100.100.100.200", "fe80::1"]
)
async def test_a_name_resolving_to_a_forbidden_address_cannot_register(
    replicas: tuple[Any, Any], dns: dict[str, list[str]], address: str
) -> None:
    dns["innocent.example.test"] = ["127.0.0.1", address]  # one bad record is enough
    async with client(replicas[0]) as http:
        answer = await http.post(
            "/connectors/register",
            json=connector_body(url="http://innocent.example.test:8620/fs"),
            headers=FLEET,
        )
    assert answer.status_code == 422 and address in answer.json()["message"] and "hmac" not in answer.text


async def test_a_name_rebound_after_registration_is_refused_at_connect_time(
    replicas: tuple[Any, Any], dns: dict[str, list[str]], estimate_server: tuple[int, list[str]]
) -> None:
    port, hits = estimate_server
    dns["conn.example.test"] = ["127.0.0.1"]
    body = connector_body(url=f"http://conn.example.test:{port}/fs")
    operator = {"X-API-Key": OPERATOR_KEY}
    async with client(replicas[0]) as http:
        assert (await http.post("/connectors/register", json=body, headers=FLEET)).status_code == 201
        allowed = await http.get(f"/connectors/estimate/{body['uuid']}", headers=operator)
        assert allowed.status_code == 200 and allowed.json()["count"] == 3 and hits == ["/fs/estimate"]
        dns["conn.example.test"] = ["169.254.169.254"]  # the attacker's DNS answers differently now
        refused = await http.get(f"/connectors/estimate/{body['uuid']}", headers=operator)
    assert refused.status_code == 502 and "AddressRefused" in refused.json()["message"]
    assert hits == ["/fs/estimate"]  # nothing more was sent anywhere


async def test_the_hot_path_client_gets_only_checked_addresses(dns: dict[str, list[str]]) -> None:
    dns["fs.example.test"] = ["10.1.2.3"]
    assert await connect_address("fs.example.test", 8620, AddressPolicy()) == "10.1.2.3"
    dns["fs.example.test"] = ["fd00:ec2::254"]
    with pytest.raises(PermanentError, match="fd00:ec2::254"):
        await connect_address("fs.example.test", 8620, AddressPolicy())
    with pytest.raises(PermanentError):
        await connect_address("169.254.169.254", 80, AddressPolicy())
    with pytest.raises(OSError):  # a name that does not resolve may come back: retried, not failed
        await connect_address("gone.example.test", 8620, AddressPolicy())


# ---- the auth layer reads the header first ------------------------------------------------------


@pytest.mark.parametrize(
    "authorization",
    ["DSX-HMAC garbage", "DSX-HMAC key_id=dsxk-unknown, ts=1, nonce=abc, sig=AAAA",
     "DSX-HMAC key_id=dsxk-unknown, ts={now}, nonce=abc, sig=AAAA"],
)  # fmt: skip
async def test_a_bad_dsx_hmac_header_is_refused_before_any_body_is_read(
    core_redis: str, authorization: str
) -> None:
    import time

    reads: list[str] = []

    async def receive() -> dict[str, Any]:
        reads.append("body")
        return {"type": "http.request", "body": b"x" * 1024, "more_body": True}

    async def app(scope: Any, receive: Any, send: Any) -> None:
        raise AssertionError("the app must not run")

    sent: list[dict[str, Any]] = []

    async def send(message: Any) -> None:
        sent.append(message)

    settings = AuthSettings(enrollment_tokens=[ENROLLMENT_TOKEN], api_keys=[OPERATOR_KEY])  # type: ignore[list-item]
    gate = AuthMiddleware(app, settings, redis.Redis.from_url(core_redis, decode_responses=True), 1 << 20)
    value = authorization.format(now=int(time.time()))
    scope = {"type": "http", "method": "POST", "path": f"{API}/scan/request", "raw_path": f"{API}/scan/request".encode(),
             "query_string": b"", "headers": [(b"authorization", value.encode())], "client": ("203.0.113.9", 1)}  # fmt: skip
    await gate(scope, receive, send)
    assert sent[0]["status"] == 401 and reads == []


# ---- refused signatures, counted across replicas ------------------------------------------------


async def test_refused_signatures_are_rate_limited_across_replicas_but_a_good_one_always_passes(
    replicas: tuple[Any, Any],
) -> None:
    """Refusals are counted in Redis (shared by the replicas): past the budget a refused request
    answers 429, never one whose signature verifies. Failures with a known key are counted for that
    key from that source, guesses (unknown key ids) for the source: separate budgets."""
    one, two = replicas
    async with client(one) as http:
        enrolled = (
            await http.post("/connectors/register", json=(body := connector_body()), headers=FLEET)
        ).json()
    good = Signer(enrolled["hmac_key_id"], enrolled["hmac_secret"])
    forged = Signer(enrolled["hmac_key_id"], "not-the-secret-0123456789")
    bogus = Signer("dsxk-not-a-key-0123456789", "not-the-secret-0123456789")
    request = {"connector": body, "location": "a.txt", "metainfo": "a.txt"}

    async def post(app: Any, signer: Signer) -> int:
        async with client(app, auth=DsxAuth(signer)) as http:
            return (await http.post("/scan/request", json=request)).status_code

    await anyio.sleep(wait_to_clear_window_end())  # the failures are counted per minute: all in one
    assert [await post(one, forged) for _ in range(5)] == [401] * 5
    assert await post(two, forged) == 429  # the other replica finds the shared count over the budget
    assert await post(one, good) == 202 and await post(two, good) == 202  # a good signature passes
    assert [await post(two, bogus) for _ in range(5)] == [401] * 5  # guesses: the source's own budget
    assert await post(one, bogus) == 429
    assert await post(one, good) == 202 and await post(two, good) == 202


@pytest.fixture
def strict_replica(core_redis: str) -> Iterator[Any]:
    """A core whose budget of refused signatures is 2 a minute per source."""
    with core_environment(DSXCONNECT_REDIS_URL=core_redis, DSXCONNECT_AUTH__FAILED_SIGNATURES_PER_MIN="2"):
        auth_deps._keys.cache_clear()
        urls._settings_policy.cache_clear()
        yield in_process_core()
    auth_deps._keys.cache_clear()
    urls._settings_policy.cache_clear()


async def test_junk_signatures_from_a_shared_address_never_stop_a_correctly_signed_connector(
    strict_replica: Any,
) -> None:
    """Every refused signature counted toward a block of its source, checked before the key: a few
    junk headers a minute from an address many connectors share (an ingress, a NAT) answered every
    correctly signed call from it 429, and scanning stopped."""
    async with client(strict_replica) as http:
        enrolled = (
            await http.post("/connectors/register", json=(body := connector_body()), headers=FLEET)
        ).json()
    good = Signer(enrolled["hmac_key_id"], enrolled["hmac_secret"])
    request = {"connector": body, "location": "a.txt", "metainfo": "a.txt"}

    async def post(**kwargs: Any) -> int:
        async with client(strict_replica, **kwargs) as http:
            return (await http.post("/scan/request", json=request)).status_code

    await anyio.sleep(wait_to_clear_window_end())  # the failures are counted per minute: all in one
    junk = [Signer(f"dsxk-junk-{n}-0123456789", "not-the-secret-0123456789") for n in range(2)]
    assert [await post(auth=DsxAuth(signer)) for signer in junk] == [401, 401]
    assert await post(headers={"Authorization": "DSX-HMAC garbage"}) == 429  # the source's budget is spent
    assert await post(auth=DsxAuth(good)) == 202  # ... and a correct signature still passes


async def test_a_nonce_is_kept_past_the_replay_window_by_a_margin_for_replica_clocks(
    replicas: tuple[Any, Any], core_redis: str
) -> None:
    """Kept exactly ``2 * skew``, a nonce could be forgotten while a replica whose clock is behind
    still takes its timestamp: the request could be replayed there."""
    one, _ = replicas
    async with client(one) as http:
        enrolled = (
            await http.post("/connectors/register", json=(body := connector_body()), headers=FLEET)
        ).json()
    signer = Signer(enrolled["hmac_key_id"], enrolled["hmac_secret"])
    content = json.dumps({"connector": body, "location": "a.txt", "metainfo": "a.txt"}).encode()
    path = f"{API}/scan/request"
    header = signer.authorization("POST", path, content)
    async with client(one) as http:
        answer = await http.post(
            "/scan/request",
            content=content,
            headers={"Authorization": header, "content-type": "application/json"},
        )
    assert answer.status_code == 202, answer.text
    nonce = parse_authorization(header).nonce
    skew = get_settings().auth.hmac_skew_s
    with redis.Redis.from_url(core_redis, decode_responses=True) as db:
        ttl = db.ttl(keys.auth_nonce(signer.key_id, nonce))
    assert ttl > 2 * skew + 60 - 5, ttl  # the window and a minute's margin (a few seconds passed)


@pytest.fixture
def guessed_replicas(core_redis: str) -> Iterator[tuple[Any, Any]]:
    """Two API replicas of one core (one Redis), wrong API keys limited to 3 a minute per source."""
    with core_environment(DSXCONNECT_REDIS_URL=core_redis, DSXCONNECT_AUTH__LOGIN_ATTEMPTS_PER_MIN="3"):
        auth_deps._keys.cache_clear()
        urls._settings_policy.cache_clear()
        yield in_process_core(), in_process_core()
    auth_deps._keys.cache_clear()
    urls._settings_policy.cache_clear()


async def test_wrong_api_keys_are_rate_limited_per_source_across_replicas(
    guessed_replicas: tuple[Any, Any],
) -> None:
    """A replica asked Redis only for sources it had refused itself: past the budget spent on one
    replica, another still told the right key (200) from a wrong one (401)."""
    one, two = guessed_replicas
    wrong = "guess-0123456789abcdef"

    async def get(app: Any, key: str) -> httpx.Response:
        async with client(app, headers={"X-API-Key": key}) as http:
            return await http.get("/scan/jobs")

    await anyio.sleep(wait_to_clear_window_end())  # the failures are counted per minute: all in one
    assert [(await get(one, wrong)).status_code for _ in range(3)] == [401] * 3
    for app in (one, two):  # two has refused nobody itself: it asks the shared count all the same
        for key in (OPERATOR_KEY, wrong):  # and a right key answers as a wrong one
            answer = await get(app, key)
            assert answer.status_code == 429, (app is two, key == OPERATOR_KEY, answer.text)
            assert int(answer.headers["retry-after"]) >= 1
            assert "too many wrong API keys" in answer.json()["message"]


class DsxAuth(httpx.Auth):
    requires_request_body = True

    def __init__(self, signer: Signer) -> None:
        self.signer = signer

    def auth_flow(self, request: httpx.Request) -> Any:
        request.headers["Authorization"] = self.signer.authorization(
            request.method, request.url.raw_path.decode(), request.content
        )
        yield request


# ---- the connector ------------------------------------------------------------------------------


@pytest.fixture
def small_nonce_connector(tmp_path: Path) -> Any:
    (tmp_path / "a.txt").write_bytes(b"alpha")
    auth = {**CONNECTOR_AUTH, "nonce_capacity": 100}
    return create_connector_app(FilesystemConnector(FilesystemSettings(asset=str(tmp_path), auth=auth)))  # type: ignore[arg-type]


async def test_a_full_nonce_store_refuses_and_never_forgets_a_nonce_in_the_window(
    small_nonce_connector: Any,
) -> None:
    signer = Signer(CONNECTOR_KEY_ID, CONNECTOR_SECRET)
    path = "/filesystem-connector/estimate"
    transport = httpx.ASGITransport(app=small_nonce_connector)
    async with httpx.AsyncClient(transport=transport, base_url="http://t") as http:
        first = signer.authorization("GET", path)
        codes = [(await http.get(path, headers={"Authorization": first})).status_code]
        for _ in range(99):
            codes.append(
                (
                    await http.get(path, headers={"Authorization": signer.authorization("GET", path)})
                ).status_code
            )
        assert codes == [200] * 100
        full = await http.get(path, headers={"Authorization": signer.authorization("GET", path)})
        replay = await http.get(path, headers={"Authorization": first})  # the oldest nonce: still remembered
    assert full.status_code == 503 and int(full.headers["retry-after"]) >= 1
    assert replay.status_code == 401 and "replayed" in replay.text


async def test_the_connector_shows_its_uuid_and_asset_only_to_the_core(small_nonce_connector: Any) -> None:
    transport = httpx.ASGITransport(app=small_nonce_connector)
    signer = Signer(CONNECTOR_KEY_ID, CONNECTOR_SECRET)
    async with httpx.AsyncClient(transport=transport, base_url="http://t") as http:
        anonymous = (await http.get("/filesystem-connector/")).json()
        forged = (await http.get("/filesystem-connector/", headers={"Authorization": "DSX-HMAC x"})).json()
        core = await http.get(
            "/filesystem-connector/",
            headers={"Authorization": signer.authorization("GET", "/filesystem-connector/")},
        )
    assert (
        "uuid" not in anonymous and "asset" not in anonymous and anonymous["name"] == "filesystem-connector"
    )
    assert "uuid" not in forged and "asset" not in forged
    assert {"uuid", "asset"} <= set(core.json())


# ---- the migration setting ----------------------------------------------------------------------


async def test_the_migration_setting_restores_fleet_re_registration_and_warns(
    core_redis: str,
) -> None:
    warnings: list[str] = []
    handler = logging.Handler()
    handler.emit = lambda record: warnings.append(record.getMessage())  # type: ignore[method-assign]
    logging.getLogger("dsx_connect.auth.install").addHandler(handler)
    with core_environment(DSXCONNECT_REDIS_URL=core_redis, DSXCONNECT_AUTH__ALLOW_FLEET_REENROLL="true"):
        auth_deps._keys.cache_clear()
        try:
            app = in_process_core()
        finally:
            logging.getLogger("dsx_connect.auth.install").removeHandler(handler)
        assert any("DSXCONNECT_AUTH__ALLOW_FLEET_REENROLL=true" in w for w in warnings)
        body = connector_body()
        async with client(app) as http:
            first = await http.post("/connectors/register", json=body, headers=FLEET)
            again = await http.post("/connectors/register", json=body, headers=FLEET)
    auth_deps._keys.cache_clear()
    assert (first.status_code, again.status_code) == (201, 200)
    assert again.json()["hmac_secret"] == first.json()["hmac_secret"]  # 1.x behaviour, on purpose


async def test_the_workers_pool_connects_where_its_resolver_says_and_nowhere_else(
    estimate_server: tuple[int, list[str]],
) -> None:
    port, hits = estimate_server
    pool = HttpPool()
    checked: list[str] = []

    async def resolve(host: str, port_: int) -> str:
        checked.append(host)
        if host == "rebound.example.test":
            raise PermanentError(
                "connecting to rebound.example.test refused: 169.254.169.254 is a metadata address"
            )
        return "127.0.0.1"

    try:
        answer = await pool.request(
            "GET", target(f"http://fs.example.test:{port}/fs/estimate"), {}, resolve=resolve
        )
        async with answer:
            assert answer.status == 200 and b'"count": 3' in await answer.read()
        with pytest.raises(PermanentError):
            await pool.request(
                "GET", target(f"http://rebound.example.test:{port}/fs/estimate"), {}, resolve=resolve
            )
    finally:
        pool.close()
    assert checked == ["fs.example.test", "rebound.example.test"] and hits == ["/fs/estimate"]
