"""Connector identity (SPEC §8), on a real core with auth on, as an attacker holding an enrollment token
tries it: another uuid's pair, URL or rotation is refused and nothing is revealed, while the victim
keeps working; scoped tokens let a 1.x connector re-register after a restart; job ids cannot reach
another key or another connector's job; failed logins are rate-limited."""

from __future__ import annotations

import json
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest

from dsx_connect.auth import cli
from dsx_connect.jobs.stall import fail_stalled_jobs
from dsx_connect.state.jobs import JobStore
from shared.connector.security import ConnectorCredentials, CoreAuth
from tests.security.conftest import Enrolled, SecureCore, connector_body
from tests.support.auth import ENROLLMENT_TOKEN, OPERATOR_KEY, connector_signer
from tests.support.clock import wait_to_clear_window_end

pytestmark = pytest.mark.integration

FLEET = {"X-Enrollment-Token": ENROLLMENT_TOKEN}


def register(
    core: SecureCore, body: dict[str, object], headers: dict[str, str] | None = None, **kw: object
) -> httpx.Response:
    return httpx.post(f"{core.api}/connectors/register", json=body, headers=headers or {}, timeout=10, **kw)  # type: ignore[arg-type]


def registered_url(core: SecureCore, uid: str) -> str:
    with core.operator() as http:
        return next(c["url"] for c in http.get("/connectors/list").json() if c["uuid"] == uid)


def still_works(core: SecureCore, who: Enrolled) -> None:
    with core.as_connector(who) as http:
        assert http.post("/scan/request", json=who.scan_request()).status_code == 202


def mint(core: SecureCore, **binding: object) -> dict[str, object]:
    with core.operator() as http:
        answer = http.post("/auth/enrollment-tokens", json=binding)
    assert answer.status_code == 201, answer.text
    return dict(answer.json())


# ---- a fleet-wide token against an existing identity ----------------------------------------------


def test_a_fleet_token_cannot_obtain_another_connectors_pair(core: SecureCore, alice: Enrolled) -> None:
    answer = register(core, alice.body, FLEET)
    assert answer.status_code == 409
    assert alice.secret not in answer.text and alice.key_id not in answer.text and "hmac" not in answer.text
    still_works(core, alice)


def test_a_fleet_token_cannot_repoint_another_connector(core: SecureCore, alice: Enrolled) -> None:
    moved = {**alice.body, "url": "http://127.0.0.1:9/attacker-connector"}
    answer = register(core, moved, FLEET)
    assert answer.status_code == 409 and "hmac" not in answer.text
    assert registered_url(core, alice.uuid) == alice.body["url"]
    still_works(core, alice)


def test_a_fleet_token_cannot_rotate_another_connector(core: SecureCore, alice: Enrolled) -> None:
    answer = register(core, alice.body, FLEET, params={"rotate": "true"})
    assert answer.status_code == 409 and "hmac" not in answer.text
    with core.operator() as http:
        assert http.get(f"/auth/connectors/{alice.uuid}").json()["key_id"] == alice.key_id
    still_works(core, alice)


def test_a_bearer_fleet_token_is_refused_the_same_way(core: SecureCore, alice: Enrolled) -> None:
    answer = register(core, alice.body, {"Authorization": f"Bearer {ENROLLMENT_TOKEN}"})
    assert answer.status_code == 409 and "hmac" not in answer.text


def test_another_connectors_signature_cannot_register_a_victim(
    core: SecureCore, alice: Enrolled, bob: Enrolled
) -> None:
    with core.as_connector(bob) as http:
        answer = http.post("/connectors/register", json={**alice.body, "url": "http://127.0.0.1:9/bob"})
    assert answer.status_code == 403 and "hmac" not in answer.text
    assert registered_url(core, alice.uuid) == alice.body["url"]


def test_two_first_registrations_of_one_uuid_give_the_pair_once(core: SecureCore) -> None:
    body = connector_body()
    first, second = register(core, body, FLEET), register(core, body, FLEET)
    assert (first.status_code, second.status_code) == (201, 409)


def test_racing_first_registrations_of_one_uuid_create_one_identity(core: SecureCore) -> None:
    """security.md: of racing first registrations of one uuid one creates it, the others get 409.
    Sent one after the other, a check-then-write would pass too: here 20 go at once, each naming its
    own URL (an attacker racing the real connector), and only the winner's pair and URL exist."""
    uid = str(uuid.uuid4())
    bodies = [connector_body(uid, url=f"http://127.0.0.1:{9000 + n}/filesystem-connector") for n in range(20)]
    start = threading.Barrier(len(bodies))

    def race(body: dict[str, object]) -> httpx.Response:
        start.wait(timeout=10)
        return register(core, body, FLEET)

    with ThreadPoolExecutor(len(bodies)) as pool:
        answers = list(pool.map(race, bodies))
    codes = sorted(a.status_code for a in answers)
    assert codes == [201] + [409] * (len(bodies) - 1), codes
    winner = next(n for n, a in enumerate(answers) if a.status_code == 201)
    assert registered_url(core, uid) == bodies[winner]["url"]
    assert all("hmac_secret" not in a.json() for a in answers if a.status_code == 409)


# ---- the connector itself: signed ---------------------------------------------------------------


def test_a_signed_registration_may_change_the_url_and_rotate(core: SecureCore, alice: Enrolled) -> None:
    moved = {**alice.body, "url": "http://127.0.0.1:10/filesystem-connector"}
    with core.as_connector(alice) as http:
        assert http.post("/connectors/register", json=moved).status_code == 200
        rotated = http.post("/connectors/register", params={"rotate": "true"}, json=moved).json()
    assert registered_url(core, alice.uuid) == moved["url"]
    assert rotated["hmac_key_id"] != alice.key_id
    still_works(core, Enrolled(moved, rotated["hmac_key_id"], rotated["hmac_secret"]))


def test_an_operator_reset_lets_the_identity_be_created_anew(core: SecureCore, alice: Enrolled) -> None:
    with core.operator() as http:
        assert http.post(f"/auth/connectors/{alice.uuid}/reset").status_code == 200
    with core.as_connector(alice) as http:
        assert http.post("/scan/request", json=alice.scan_request()).status_code == 401  # its pair is gone
    fresh = register(core, alice.body, FLEET)
    assert fresh.status_code == 201 and fresh.json()["hmac_key_id"] != alice.key_id


def test_after_a_reset_the_connector_drops_the_old_pair_at_once(core: SecureCore, alice: Enrolled) -> None:
    """Reset is the remedy for a stolen pair: the core refuses it at once, and so does the connector
    after the heartbeat that brings its new pair (it kept the old one 15 minutes before)."""
    credentials = ConnectorCredentials(alice.key_id, alice.secret)
    with core.operator() as http:
        assert http.post(f"/auth/connectors/{alice.uuid}/reset").status_code == 200
    with httpx.Client(base_url=core.api, auth=CoreAuth(credentials, ENROLLMENT_TOKEN), timeout=10) as http:
        answer = http.post("/connectors/register", json=alice.body)
    assert answer.status_code == 201 and answer.json()["hmac_previous_valid_s"] == 0
    assert credentials.key_id not in (None, alice.key_id)
    assert credentials.secret_for(alice.key_id) is None


def test_after_a_rotation_the_connector_keeps_the_old_pair_only_as_long_as_the_core(
    core: SecureCore, alice: Enrolled
) -> None:
    credentials = ConnectorCredentials(alice.key_id, alice.secret)
    with core.operator() as http:
        assert http.post(f"/auth/connectors/{alice.uuid}/rotate").status_code == 200
    with httpx.Client(base_url=core.api, auth=CoreAuth(credentials, ENROLLMENT_TOKEN), timeout=10) as http:
        answer = http.post("/connectors/register", json=alice.body)
    assert answer.status_code == 200, answer.text
    grace = answer.json()["hmac_previous_valid_s"]
    assert 0 < grace <= core.redis.ttl(f"dsxc:auth:key:{alice.key_id}") + 1  # the core's grace, not 900 s
    assert credentials.key_id != alice.key_id and credentials.secret_for(alice.key_id) == alice.secret
    assert credentials._previous is not None and credentials._previous[2] <= time.monotonic() + grace


def test_two_rotations_before_a_heartbeat_leave_the_connector_its_pair(
    core: SecureCore, alice: Enrolled
) -> None:
    """The second rotation replaces a pair the connector never fetched; the one it holds stays the
    previous pair (the core signs with it, the heartbeat signed with it is answered the newest)."""
    with core.operator() as http:
        first = http.post(f"/auth/connectors/{alice.uuid}/rotate").json()["key_id"]
        second = http.post(f"/auth/connectors/{alice.uuid}/rotate").json()["key_id"]
        described = http.get(f"/auth/connectors/{alice.uuid}").json()
    assert described["previous_key_id"] == alice.key_id and described["key_id"] == second
    assert core.redis.exists(f"dsxc:auth:key:{first}") == 0  # never handed out, gone
    credentials = ConnectorCredentials(alice.key_id, alice.secret)
    with httpx.Client(base_url=core.api, auth=CoreAuth(credentials, ENROLLMENT_TOKEN), timeout=10) as http:
        answer = http.post("/connectors/register", json=alice.body)
    assert answer.status_code == 200 and answer.json()["hmac_key_id"] == second
    assert credentials.key_id == second


# ---- scoped enrollment tokens -------------------------------------------------------------------


def test_a_1x_connector_with_a_scoped_token_re_registers_after_restarts(core: SecureCore) -> None:
    body = connector_body(name="legacy-connector")
    token = str(mint(core, connector_name="legacy-connector", label="1.x box")["token"])
    as_1x = {"Authorization": f"Bearer {token}"}  # what a DSX-Connect 1.x connector sends, unsigned
    first, restarted = register(core, body, as_1x), register(core, body, as_1x)
    assert (first.status_code, restarted.status_code) == (201, 200)
    pair = (first.json()["hmac_key_id"], first.json()["hmac_secret"])
    assert (restarted.json()["hmac_key_id"], restarted.json()["hmac_secret"]) == pair
    moved = register(
        core, {**body, "url": "http://127.0.0.1:11/legacy-connector"}, {"X-Enrollment-Token": token}
    )
    assert moved.status_code == 200  # its holder receives the pair anyway: a URL change is its business
    with httpx.Client(base_url=core.api, auth=connector_signer(first.json()), timeout=10) as http:
        scan = {"connector": body, "location": "a.txt", "metainfo": "a.txt"}
        assert http.post("/scan/request", json=scan).status_code == 202
    assert register(core, body, as_1x, params={"rotate": "true"}).status_code == 403


def test_a_scoped_token_speaks_for_its_connector_only(core: SecureCore, alice: Enrolled) -> None:
    token = str(mint(core, connector_name="mallory-connector")["token"])
    headers = {"X-Enrollment-Token": token}
    as_alice_named_mallory = {**alice.body, "name": "mallory-connector"}
    assert register(core, alice.body, headers).status_code == 403  # another name
    answer = register(core, as_alice_named_mallory, headers)  # alice's uuid, the token's name
    assert answer.status_code == 409 and "hmac" not in answer.text
    by_uuid = str(mint(core, connector_uuid=str(uuid.uuid4()))["token"])
    assert register(core, alice.body, {"X-Enrollment-Token": by_uuid}).status_code == 403
    still_works(core, alice)


def test_scoped_tokens_are_listed_without_their_value_revoked_and_expire(core: SecureCore) -> None:
    minted = mint(core, connector_name="short-lived-connector", expires_in_s=3600)
    token, token_id = str(minted["token"]), str(minted["id"])
    with core.operator() as http:
        listed = http.get("/auth/enrollment-tokens").json()
    assert any(t["id"] == token_id and t["expires_at"] for t in listed) and token not in str(listed)
    assert token not in str(core.redis.hgetall(f"dsxc:auth:etok:{token_id}"))  # stored hashed
    body = connector_body(name="short-lived-connector")
    core.redis.hset(f"dsxc:auth:etok:{token_id}", "expires_at", f"{time.time() - 1:.3f}")  # as time passes
    assert register(core, body, {"X-Enrollment-Token": token}).status_code == 401
    other = mint(core, connector_name="revoked-connector")
    with core.operator() as http:
        assert http.delete(f"/auth/enrollment-tokens/{other['id']}").status_code == 200
        assert http.delete(f"/auth/enrollment-tokens/{other['id']}").status_code == 404
    revoked = register(
        core, connector_body(name="revoked-connector"), {"X-Enrollment-Token": str(other["token"])}
    )
    assert revoked.status_code == 401


def test_only_operators_mint_list_and_revoke_tokens(core: SecureCore, alice: Enrolled) -> None:
    with core.anonymous() as http:
        assert http.post("/auth/enrollment-tokens", json={"connector_name": "x"}).status_code == 401
        assert http.get("/auth/enrollment-tokens", headers=FLEET).status_code == 401
    with core.as_connector(alice) as http:
        assert http.post("/auth/enrollment-tokens", json={"connector_name": "x"}).status_code == 403
    with core.operator() as http:
        assert http.post("/auth/enrollment-tokens", json={}).status_code == 422
        both = {"connector_name": "x", "connector_uuid": "y"}
        assert http.post("/auth/enrollment-tokens", json=both).status_code == 422


# ---- URLs a registration may name ---------------------------------------------------------------


@pytest.mark.parametrize(
    "url",
    ["http://127.0.0.1:8620/fs?", "http://127.0.0.1:8620/fs?a=b", "http://127.0.0.1/fs#x",
     "http://[fd00:ec2::254]/fs", "http://[64:ff9b::a9fe:a9fe]/fs", "http://100.100.100.200/fs",
     "http://[::ffff:169.254.169.254]/fs", "http://metadata.google.internal/fs"],
)  # fmt: skip
def test_registration_refuses_metadata_nat64_and_query_urls(core: SecureCore, url: str) -> None:
    answer = register(core, connector_body(url=url), FLEET)
    assert answer.status_code == 422 and "hmac" not in answer.text


# ---- job ids and job ownership ------------------------------------------------------------------


def test_a_job_id_that_names_another_key_is_refused_and_the_sweep_keeps_running(
    core: SecureCore, alice: Enrolled
) -> None:
    with core.as_connector(alice) as http:
        real = http.post("/scan/request", json=alice.scan_request(scan_job_id="job-real-1")).json()["job_id"]
        for bad in ("job-real-1:pending", "X:pending", "a/b", "", "x" * 129, "job-1\n"):
            answer = http.post("/scan/request", json=alice.scan_request(scan_job_id=bad))
            assert answer.status_code == 422, bad
        done = http.post("/scan/jobs/job-real-1:pending/enqueue_done", json={"enqueued_total": 1})
        assert done.status_code == 422  # a job id in a path cannot reach another key either
    with core.anonymous() as http:
        assert http.get("/scan/jobs/job-real-1:pending/raw").status_code == 422
    assert not core.redis.exists("dsxc:job:job-real-1:pending:pending", "dsxc:job:X:pending")
    assert core.redis.type("dsxc:job:job-real-1:pending") in ("hash", "none")
    jobs = JobStore(core.redis, 3600)
    published: list[list[dict[str, object]]] = []
    fail_stalled_jobs(jobs, 10_000, redispatch_after_s=0.0, publish=published.append)  # raises nothing
    assert jobs.get(real) is not None


def test_a_connector_cannot_write_into_another_connectors_job(
    core: SecureCore, alice: Enrolled, bob: Enrolled
) -> None:
    with core.as_connector(alice) as http:
        job_id = http.post("/scan/request", json=alice.scan_request(scan_job_id="alices-job")).json()[
            "job_id"
        ]
    before = core.redis.hgetall(f"dsxc:job:{job_id}")
    with core.as_connector(bob) as http:
        assert http.post("/scan/request", json=bob.scan_request(scan_job_id=job_id)).status_code == 403
        batch = {"requests": [bob.scan_request(scan_job_id=job_id)]}
        assert http.post("/scan/request_batch", json=batch).status_code == 403
        assert http.post(f"/scan/jobs/{job_id}/enqueue_done", json={"enqueued_total": 0}).status_code == 403
    after = core.redis.hgetall(f"dsxc:job:{job_id}")
    assert {k: v for k, v in after.items() if "ts" not in k} == {
        k: v for k, v in before.items() if "ts" not in k
    }


# ---- /auth/login --------------------------------------------------------------------------------


def test_failed_logins_are_rate_limited_per_source(core: SecureCore) -> None:
    time.sleep(wait_to_clear_window_end())  # the failures are counted per minute: all in one
    for key in core.redis.scan_iter("dsxc:auth:rl:login:*"):  # earlier tests' failed logins this minute
        core.redis.delete(key)
    try:
        with core.anonymous() as http:
            codes = [
                http.post("/auth/login", json={"api_key": f"guess-{n:020d}"}).status_code for n in range(10)
            ]
            assert codes == [401] * 10
            limited = http.post("/auth/login", json={"api_key": OPERATOR_KEY})
        assert limited.status_code == 429 and int(limited.headers["retry-after"]) >= 1
    finally:
        for key in core.redis.scan_iter("dsxc:auth:rl:login:*"):
            core.redis.delete(key)
    with core.anonymous() as http:
        assert http.post("/auth/login", json={"api_key": OPERATOR_KEY}).status_code == 200


# ---- the command line -------------------------------------------------------------------------


def test_the_cli_mints_lists_and_revokes_scoped_tokens(
    core: SecureCore, capsys: pytest.CaptureFixture[str]
) -> None:
    common = ["--url", core.url, "--api-key", OPERATOR_KEY]
    assert cli.run([*common, "mint", "--connector-name", "cli-connector", "--label", "from a shell"]) == 0
    token = capsys.readouterr().out.strip()
    assert token.startswith("dsxe-")
    assert (
        register(core, connector_body(name="cli-connector"), {"X-Enrollment-Token": token}).status_code == 201
    )
    assert cli.run([*common, "list"]) == 0
    listed = json.loads(capsys.readouterr().out)
    (mine,) = [t for t in listed if t["connector_name"] == "cli-connector"]
    assert token not in json.dumps(listed)
    assert cli.run([*common, "revoke", mine["id"]]) == 0
    capsys.readouterr()
    assert (
        register(core, connector_body(name="cli-connector"), {"X-Enrollment-Token": token}).status_code == 401
    )
    assert cli.run(["--url", core.url, "--api-key", "wrong-key-0123456789", "list"]) == 1
