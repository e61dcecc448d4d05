"""A connector cannot reach into another's work through the ids and keys the core derives from its
uuid: change event ids, monitor jobs, stored state. Against an in-process core (auth on) on a real
Redis; tests/dsx_connect/test_connector_isolation.py holds the store-level cases."""

from __future__ import annotations

import time
import uuid
from collections.abc import AsyncIterator, Iterator
from typing import Any

import httpx
import pytest
import redis

from dsx_connect import keys
from dsx_connect.auth import deps as auth_deps
from dsx_connect.auth import urls
from shared.hmac_auth import DsxHmacAuth, Signer
from tests.security.conftest import connector_body, core_environment, in_process_core
from tests.support.auth import ENROLLMENT_TOKEN, OPERATOR_KEY

pytestmark = [pytest.mark.integration, pytest.mark.anyio]

API = "/dsx-connect/api/v1"
FLEET = {"X-Enrollment-Token": ENROLLMENT_TOKEN}


@pytest.fixture
def db(redis_url: str) -> Iterator[redis.Redis]:
    conn = redis.Redis.from_url(redis_url.rsplit("/", 1)[0] + "/11", decode_responses=True)
    conn.flushdb()
    yield conn
    conn.flushdb()
    conn.close()


@pytest.fixture
def app(db: redis.Redis, redis_url: str) -> Iterator[Any]:
    with core_environment(DSXCONNECT_REDIS_URL=redis_url.rsplit("/", 1)[0] + "/11"):
        auth_deps._keys.cache_clear()
        urls._settings_policy.cache_clear()
        yield in_process_core()
    auth_deps._keys.cache_clear()
    urls._settings_policy.cache_clear()


@pytest.fixture
async def operator(app: Any) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(
        transport=transport, base_url="http://core" + API, headers={"X-API-Key": OPERATOR_KEY}
    ) as http:
        yield http


async def register(app: Any, body: dict[str, Any]) -> httpx.Response:
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://core" + API
    ) as http:
        return await http.post("/connectors/register", json=body, headers=FLEET)


def signed(app: Any, enrolled: dict[str, Any]) -> httpx.AsyncClient:
    signer = Signer(enrolled["hmac_key_id"], enrolled["hmac_secret"])
    return httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://core" + API, auth=DsxHmacAuth(signer)
    )


# ---- request ids across connectors --------------------------------------------------------------


async def test_a_uuid_extending_anothers_with_a_colon_cannot_enroll_nor_take_its_change_events(
    app: Any,
) -> None:
    """``B:evil`` submitting ``payload.exe`` got the id of ``B``'s ``evil:payload.exe`` (same
    version): B's event then named the attacker's monitor job, B's batch was refused 403, and B's
    connector gave up on it. Such a uuid is refused now (and the ids are framed: test_intake.py)."""
    victim_body = connector_body()
    victim = (await register(app, victim_body)).json()
    refused = await register(app, connector_body(f"{victim_body['uuid']}:evil"))
    assert refused.status_code == 422 and "uuid" in refused.text
    event = {"connector": victim_body, "location": "evil:payload.exe", "metainfo": "m", "item_version": "v1"}
    async with signed(app, victim) as http:
        assert (await http.post("/scan/request_batch", json={"requests": [event]})).status_code == 202


# ---- monitor jobs are the core's ----------------------------------------------------------------


async def test_a_connector_cannot_create_a_job_under_a_monitor_jobs_name(app: Any, db: redis.Redis) -> None:
    """A job made ahead as ``monitor-<victim>-<T>`` was written over by the victim's monitor job
    rolling over at T: the attacker's items counted and reported in the victim's job."""
    victim_body, attacker_body = connector_body(), connector_body()
    await register(app, victim_body)
    attacker = (await register(app, attacker_body)).json()
    planted = f"monitor-{victim_body['uuid']}-{int(time.time()) + 60}"
    request = {"connector": attacker_body, "location": "x", "metainfo": "x", "scan_job_id": planted}
    async with signed(app, attacker) as http:
        answer = await http.post("/scan/request", json=request)
    assert answer.status_code == 400 and "scan_job_id" in answer.json()["message"]
    assert not db.exists(keys.job(planted))


# ---- connector state ----------------------------------------------------------------------------


async def test_a_connectors_state_is_refused_past_1000_keys(app: Any, db: redis.Redis) -> None:
    """Redis runs without eviction: one connector writing keys without end stopped the core."""
    body = connector_body()
    enrolled = (await register(app, body)).json()
    base = f"/connectors/state/{body['uuid']}"
    async with signed(app, enrolled) as http:
        codes = [
            (await http.put(f"{base}/ns{n % 7}/key-{n}", content=b"cursor")).status_code for n in range(1000)
        ]
        assert codes == [204] * 1000
        refused = await http.put(f"{base}/ns-more/key-1000", content=b"cursor")
        assert refused.status_code == 409 and "1000" in refused.json()["message"]
        assert (await http.put(f"{base}/ns0/key-0", content=b"moved on")).status_code == 204  # an overwrite
        assert (await http.get(f"{base}/ns0/key-0")).json() == {"value": "moved on"}
    assert not db.exists(keys.connector_state(body["uuid"], "ns-more"))


async def test_a_connectors_state_is_refused_past_8_mib(app: Any) -> None:
    body = connector_body()
    enrolled = (await register(app, body)).json()
    value = b"x" * 60_000
    async with signed(app, enrolled) as http:
        codes = [
            (await http.put(f"/connectors/state/{body['uuid']}/big/k{n}", content=value)).status_code
            for n in range(140)
        ]
    assert codes == [204] * 139 + [413]  # 139 values and names fit in 8 MiB, the 140th would not


async def test_a_uuid_with_a_colon_cannot_address_another_connectors_state(
    app: Any, operator: httpx.AsyncClient
) -> None:
    """uuid ``X`` + namespace ``Y:N`` and uuid ``X:Y`` + namespace ``N`` were one Redis key."""
    x_body = connector_body()
    x = (await register(app, x_body)).json()
    async with signed(app, x) as http:
        assert (
            await http.put(f"/connectors/state/{x_body['uuid']}/Y:N/cursor", content=b"x's")
        ).status_code == 204
    forged = f"{x_body['uuid']}:Y"
    assert (await register(app, connector_body(forged))).status_code == 422
    assert (await operator.get(f"/connectors/state/{forged}/N/cursor")).status_code == 422
    assert (await operator.put(f"/connectors/state/{forged}/N/cursor", content=b"forged")).status_code == 422
    assert (await operator.get(f"/connectors/state/{x_body['uuid']}/Y:N/cursor")).json() == {"value": "x's"}


@pytest.mark.parametrize("action", ["reset", "revoke"])
async def test_a_connectors_state_goes_with_its_identity(
    app: Any, operator: httpx.AsyncClient, db: redis.Redis, action: str
) -> None:
    body, other_body = connector_body(), connector_body()
    enrolled, other = (await register(app, body)).json(), (await register(app, other_body)).json()
    for who, who_body in ((enrolled, body), (other, other_body)):
        async with signed(app, who) as http:
            assert (
                await http.put(f"/connectors/state/{who_body['uuid']}/fs/delta", content=b"t")
            ).status_code == 204
    assert (await operator.post(f"/auth/connectors/{body['uuid']}/{action}")).status_code == 200
    assert not db.exists(keys.connector_state(body["uuid"], "fs"), keys.connector_state_usage(body["uuid"]))
    assert (await operator.get(f"/connectors/state/{other_body['uuid']}/fs/delta")).json() == {"value": "t"}


def test_uuids_the_connectors_make_fit_the_pattern() -> None:
    from shared.models import ConnectorInstance

    for made in (
        str(uuid.uuid4()),
        uuid.uuid4().hex,
        str(uuid.uuid5(uuid.NAMESPACE_URL, "dsx-connect|fs|/d|http://x")),
    ):
        assert ConnectorInstance(uuid=made).uuid == made
