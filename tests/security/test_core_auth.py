"""The core as an attacker meets it (SPEC §8): every forged, replayed, stale or misdirected request is
refused with the right status, and nothing it asked for happened."""

from __future__ import annotations

import json
import time
import uuid

import httpx
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from tests.security.conftest import API, Enrolled, SecureCore, connector_body, header_for
from tests.support.auth import ENROLLMENT_TOKEN, OPERATOR_KEY, connector_signer
from tests.support.threaded_server import serving

pytestmark = pytest.mark.integration

JSON = {"content-type": "application/json"}


def post_signed(core: SecureCore, path_q: str, body: bytes, authorization: str) -> httpx.Response:
    return httpx.post(
        core.api + path_q, content=body, headers={**JSON, "Authorization": authorization}, timeout=10
    )


# ---- connector → core: the DSX-HMAC matrix ------------------------------------------------------


def test_a_correctly_signed_scan_request_is_accepted(core: SecureCore, alice: Enrolled) -> None:
    before = core.effects()
    with core.as_connector(alice) as http:
        answer = http.post("/scan/request", json=alice.scan_request())
    assert answer.status_code == 202, answer.text
    assert core.effects().queued == before.queued + 1


@pytest.mark.parametrize(
    "forgery",
    [
        "missing",
        "garbage",
        "bad_signature",
        "tampered_body",
        "tampered_query",
        "wrong_key_id",
        "stale",
        "future",
    ],
)
def test_forged_connector_requests_are_refused_and_queue_nothing(
    core: SecureCore, alice: Enrolled, forgery: str
) -> None:
    body = json.dumps(alice.scan_request("forged.txt")).encode()
    path = f"{API}/scan/request"
    # Well past the 60 s skew: the timestamp is whole seconds and the request takes time to arrive,
    # so a margin of one second would make the "future" case race the clock.
    now = int(time.time())
    beyond = 60 + 30
    authorization = {
        "missing": "",
        "garbage": "DSX-HMAC nonsense",
        "bad_signature": header_for(alice, "POST", path, body).rsplit("sig=", 1)[0]
        + "sig=AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=",
        "tampered_body": header_for(alice, "POST", path, body.replace(b"forged", b"other!")),
        "tampered_query": header_for(alice, "POST", path + "?priority=1", body),
        "wrong_key_id": header_for(alice, "POST", path, body).replace(alice.key_id, "dsxk-" + "0" * 24),
        "stale": header_for(alice, "POST", path, body, ts=now - beyond),
        "future": header_for(alice, "POST", path, body, ts=now + beyond),
    }[forgery]
    before = core.effects()
    sent = post_signed(
        core, "/scan/request" + ("?priority=2" if forgery == "tampered_query" else ""), body, authorization
    )
    assert sent.status_code == 401, sent.text
    assert sent.json()["status"] == "error"
    assert core.effects() == before


def test_a_replayed_request_is_refused_and_counted_once(core: SecureCore, alice: Enrolled) -> None:
    body = json.dumps(alice.scan_request("replayed.txt")).encode()
    authorization = header_for(alice, "POST", f"{API}/scan/request", body)
    before = core.effects()
    assert post_signed(core, "/scan/request", body, authorization).status_code == 202
    replay = post_signed(core, "/scan/request", body, authorization)
    assert replay.status_code == 401 and replay.json()["error"] == "replayed"
    assert core.effects().queued == before.queued + 1


def test_a_connector_cannot_act_for_another_connector(
    core: SecureCore, alice: Enrolled, bob: Enrolled
) -> None:
    before = core.effects()
    with core.as_connector(alice) as http:
        assert http.post("/scan/request", json=bob.scan_request()).status_code == 403
        batch = {"requests": [alice.scan_request(), bob.scan_request()]}
        assert http.post("/scan/request_batch", json=batch).status_code == 403
        assert http.delete(f"/connectors/unregister/{bob.uuid}").status_code == 403
        assert http.put(f"/connectors/state/{bob.uuid}/graph/delta", content=b"x").status_code == 403
        assert http.get(f"/connectors/state/{bob.uuid}/graph/delta").status_code == 403
    assert core.effects() == before
    with core.as_connector(bob) as http:
        job = http.post("/scan/request", json=bob.scan_request(scan_job_id=uuid.uuid4().hex)).json()["job_id"]
    with core.as_connector(alice) as http:
        assert http.post(f"/scan/jobs/{job}/enqueue_done", json={"enqueued_total": 0}).status_code == 403
    with core.operator() as http:
        assert http.get(f"/scan/jobs/{job}").json()["enqueued_total"] is None  # alice reported nothing


def test_a_connector_may_do_its_own_connector_business(core: SecureCore, alice: Enrolled) -> None:
    with core.as_connector(alice) as http:
        job = http.post("/scan/request", json=alice.scan_request(scan_job_id=uuid.uuid4().hex)).json()[
            "job_id"
        ]
        assert http.post(f"/scan/jobs/{job}/enqueue_done", json={"enqueued_total": 1}).status_code == 200
        assert http.put(f"/connectors/state/{alice.uuid}/graph/delta", content=b"tok").status_code == 204
        assert http.get(f"/connectors/state/{alice.uuid}/graph/delta").json() == {"value": "tok"}
        assert http.get("/connection/test").status_code == 200
        assert http.get(f"/scan/jobs/{job}/raw").json()["data"] == {"status": "running"}
        assert http.delete(f"/connectors/unregister/{alice.uuid}").status_code == 200


# ---- enrollment ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "headers",
    [{}, {"X-Enrollment-Token": "not-the-token-at-all-000"}, {"Authorization": f"Bearer {OPERATOR_KEY}"},
     {"X-API-Key": OPERATOR_KEY}],
    ids=["none", "wrong", "operator-key-as-bearer", "operator-key"],
)  # fmt: skip
def test_registration_needs_a_valid_enrollment_token(core: SecureCore, headers: dict[str, str]) -> None:
    body = connector_body()
    answer = httpx.post(f"{core.api}/connectors/register", json=body, headers=headers, timeout=10)
    assert answer.status_code == 401
    assert "hmac_secret" not in answer.text
    assert not core.redis.hexists("dsxc:connectors", body["uuid"])


def test_registration_answers_the_pair_and_keeps_it_across_heartbeats(core: SecureCore) -> None:
    body = connector_body()
    as_bearer = {"Authorization": f"Bearer {ENROLLMENT_TOKEN}"}
    first = httpx.post(f"{core.api}/connectors/register", json=body, headers=as_bearer, timeout=10)
    signed = connector_signer(first.json())  # heartbeats are signed with the pair the first answer brought
    again = httpx.post(
        f"{core.api}/connectors/register", json=body, headers=as_bearer, auth=signed, timeout=10
    )
    assert (first.status_code, again.status_code) == (201, 200)
    one, two = first.json(), again.json()
    assert one["hmac_key_id"].startswith("dsxk-") and len(one["hmac_secret"]) >= 40
    assert (one["hmac_key_id"], one["hmac_secret"]) == (two["hmac_key_id"], two["hmac_secret"])
    assert one["connector_uuid"] == body["uuid"] and one["status"] == "success"
    assert first.headers["cache-control"] == "no-store"
    # the core keeps no secret: only key ids and the server-key fingerprint
    stored = [v for key in core.redis.scan_iter("dsxc:auth:*") if core.redis.type(key) == "hash"
              for v in core.redis.hgetall(key).values()]  # fmt: skip
    assert one["hmac_secret"] not in stored and one["hmac_secret"] not in core.proc.log_path.read_text()


def test_a_rotation_on_reregistration_keeps_the_old_pair_valid_for_the_grace(
    core: SecureCore, alice: Enrolled
) -> None:
    with core.as_connector(alice) as http:  # ?rotate=true: signed with the current pair
        rotated = http.post("/connectors/register", params={"rotate": "true"}, json=alice.body).json()
    assert rotated["hmac_key_id"] != alice.key_id
    new = Enrolled(alice.body, rotated["hmac_key_id"], rotated["hmac_secret"])
    for who in (alice, new):  # old and new both work during the grace window
        with core.as_connector(who) as http:
            assert http.post("/scan/request", json=alice.scan_request()).status_code == 202
    with core.operator() as http:
        keys = http.get(f"/auth/connectors/{alice.uuid}").json()
    assert keys["key_id"] == new.key_id and keys["previous_key_id"] == alice.key_id
    assert keys["previous_valid_until"] > time.time() + 20
    core.redis.delete(f"dsxc:auth:key:{alice.key_id}")  # what the grace expiry does
    with core.as_connector(alice) as http:
        assert http.post("/scan/request", json=alice.scan_request()).status_code == 401


def test_an_operator_rotation_reaches_the_connector_at_its_next_registration(
    core: SecureCore, alice: Enrolled
) -> None:
    with core.operator() as http:
        rotated = http.post(f"/auth/connectors/{alice.uuid}/rotate")
        assert rotated.status_code == 200 and "hmac_secret" not in rotated.text
        assert http.get(f"/auth/connectors/{alice.uuid}").json()["key_delivered"] is False
    with core.as_connector(alice) as http:  # the old pair still works meanwhile
        assert http.post("/scan/request", json=alice.scan_request()).status_code == 202
    with core.as_connector(alice) as http:  # its heartbeat, signed with the pair it holds
        answer = http.post("/connectors/register", json=alice.body).json()
    assert answer["hmac_key_id"] == rotated.json()["key_id"]
    with core.operator() as http:
        assert http.get(f"/auth/connectors/{alice.uuid}").json()["key_delivered"] is True


def test_a_revoked_connector_is_locked_out_until_reinstated(core: SecureCore, alice: Enrolled) -> None:
    with core.operator() as http:
        assert http.post(f"/auth/connectors/{alice.uuid}/revoke").status_code == 200
        assert alice.uuid not in [c["uuid"] for c in http.get("/connectors/list").json()]
    before = core.effects()
    with core.as_connector(alice) as http:
        assert http.post("/scan/request", json=alice.scan_request()).status_code == 401
    register = {"json": alice.body, "headers": {"X-Enrollment-Token": ENROLLMENT_TOKEN}, "timeout": 10}
    refused = httpx.post(f"{core.api}/connectors/register", **register)  # type: ignore[arg-type]
    assert refused.status_code == 403 and "hmac_secret" not in refused.text
    assert core.effects() == before
    with core.operator() as http:
        assert http.post(f"/auth/connectors/{alice.uuid}/reinstate").status_code == 200
    fresh = httpx.post(f"{core.api}/connectors/register", **register).json()  # type: ignore[arg-type]
    assert fresh["hmac_key_id"] != alice.key_id


# ---- operators ----------------------------------------------------------------------------------

OPERATOR_CALLS = [
    ("GET", "/scan/results"), ("GET", "/scan/results/x"), ("GET", "/scan/stats"), ("GET", "/scan/jobs"),
    ("GET", "/scan/jobs/x"), ("POST", "/scan/jobs/x/pause"), ("POST", "/scan/jobs/x/cancel"),
    ("GET", "/scan/request/x"), ("GET", "/connectors/list"), ("POST", "/connectors/full_scan/{uuid}"),
    ("GET", "/connectors/estimate/{uuid}"), ("GET", "/connectors/config/{uuid}"), ("PUT", "/connectors/config/{uuid}"),
    ("GET", "/dlq/stats"), ("GET", "/dlq/items"), ("POST", "/dlq/requeue"), ("DELETE", "/dlq"),
    ("GET", "/admin/dead-letter/stats"), ("GET", "/subscribe/scan-result"), ("GET", "/subscribe/connector-registered"),
    ("GET", "/test/dsxa-connection"), ("GET", "/superlog/stats"), ("GET", "/auth/connectors"),
    ("POST", "/auth/connectors/{uuid}/revoke"), ("GET", "/metrics"),
]  # fmt: skip


def _call(core: SecureCore, client: httpx.Client, method: str, path: str, uuid_: str) -> httpx.Response:
    url = (core.url if path == "/metrics" else core.api) + path.format(uuid=uuid_)
    body = b'{"all": true}' if method in ("POST", "PUT") else None
    return client.request(method, url, content=body, headers=JSON if body else None)


@pytest.mark.parametrize(("method", "path"), OPERATOR_CALLS, ids=[f"{m} {p}" for m, p in OPERATOR_CALLS])
def test_operator_endpoints_refuse_anonymous_callers_with_401(
    core: SecureCore, alice: Enrolled, method: str, path: str
) -> None:
    before = core.effects()
    with httpx.Client(timeout=10) as client:
        answer = _call(core, client, method, path, alice.uuid)
        base = core.url if path == "/metrics" else core.api
        wrong_key = client.request(
            method, base + path.format(uuid=alice.uuid), headers={"X-API-Key": "wrong-key-0123456789"}
        )
    assert answer.status_code == 401, answer.text
    assert wrong_key.status_code == 401
    assert core.effects() == before


@pytest.mark.parametrize(("method", "path"), OPERATOR_CALLS, ids=[f"{m} {p}" for m, p in OPERATOR_CALLS])
def test_operator_endpoints_refuse_a_connector_key_with_403(
    core: SecureCore, alice: Enrolled, method: str, path: str
) -> None:
    before = core.effects()
    with core.as_connector(alice) as client:
        answer = _call(core, client, method, path, alice.uuid)
    assert answer.status_code == 403, answer.text
    assert answer.json()["error"] == "operators_only"
    assert core.effects() == before


@pytest.mark.parametrize("refusal", [401, 403])
def test_a_connector_refusing_the_core_is_a_502_never_the_operators_401(
    core: SecureCore, refusal: int
) -> None:
    """A connector's 401/403 (a key it does not know, or a hostile connector) was relayed as it
    came: the operator's valid key read as refused, and the dashboard, which signs out on a 401,
    probing that connector's health every 30 s, locked every operator out."""
    with serving(refusing_connector(refusal), name="refusing-connector") as base:
        who = core.enroll(name="refusing-connector", url=f"{base}/refusing-connector")
        with core.operator() as http:
            for path in ("healthz", "readyz", "estimate", "config"):
                answer = http.get(f"/connectors/{path}/{who.uuid}")
                assert answer.status_code == 502, (path, answer.text)
                assert answer.json()["error"] == "connector_refused"
                assert f"refused the core's call ({refusal}): bad signature" in answer.json()["message"]
            assert http.get("/connectors/list").status_code == 200  # the operator is still in


def refusing_connector(status: int) -> Starlette:
    """A connector answering every call ``status`` with its error body."""

    def refuse(request: Request) -> JSONResponse:
        return JSONResponse({"status": "error", "message": "bad signature"}, status)

    return Starlette(routes=[Route("/{path:path}", refuse, methods=["GET", "POST", "PUT"])])


def test_unsigned_callers_read_only_the_job_flags_and_the_batching_keys(
    core: SecureCore, alice: Enrolled
) -> None:
    with core.as_connector(alice) as http:
        job = http.post("/scan/request", json=alice.scan_request(scan_job_id=uuid.uuid4().hex)).json()[
            "job_id"
        ]
    with core.operator() as http:
        http.post(f"/scan/jobs/{job}/pause")
        full_raw, full_config = http.get(f"/scan/jobs/{job}/raw").json(), http.get("/config").json()
    assert "connector_uuid" in full_raw["data"] and "auth" in full_config
    with core.anonymous() as http:
        raw, config = http.get(f"/scan/jobs/{job}/raw"), http.get("/config")
    assert raw.json() == {"job_id": job, "data": {"paused": "1"}}
    assert int(raw.headers["content-length"]) == len(raw.content)
    assert config.json() == {"workers": {k: full_config["workers"][k] for k in (
        "scan_request_batch_enabled", "scan_request_batch_default_size", "scan_request_batch_max_size")}}  # fmt: skip


def test_config_never_shows_a_secret(core: SecureCore) -> None:
    with core.operator() as http:
        text = http.get("/config").text
    for secret in (ENROLLMENT_TOKEN, OPERATOR_KEY, "test-server-key"):
        assert secret not in text


def test_probes_docs_and_the_dashboard_stay_public(core: SecureCore) -> None:
    for path in (
        "/alive",
        "/ping",
        "/healthz",
        f"{API}/healthz",
        f"{API}/meta",
        "/docs",
        f"{API}/openapi.json",
        "/",
    ):
        assert httpx.get(core.url + path, timeout=10).status_code == 200, path
    assert httpx.get(core.url + "/readyz", timeout=10).status_code == 503  # public, honest: no scanner here


def test_a_login_session_is_an_httponly_strict_cookie_that_opens_the_dashboard_and_its_streams(
    core: SecureCore,
) -> None:
    with httpx.Client(base_url=core.api, timeout=10) as browser:
        assert browser.post("/auth/login", json={"api_key": "wrong-key-0123456789"}).status_code == 401
        assert browser.get("/auth/session").json() == {"auth_enabled": True, "authenticated": False}
        login = browser.post("/auth/login", json={"api_key": OPERATOR_KEY})
        assert login.status_code == 200
        cookie = login.headers["set-cookie"].lower()
        assert "httponly" in cookie and "samesite=strict" in cookie and "path=/" in cookie
        assert "secure" not in cookie  # plain http in this test; set over https
        assert browser.get("/auth/session").json()["authenticated"] is True
        assert browser.get("/scan/stats").status_code == 200
        with browser.stream("GET", "/subscribe/connector-registered") as events:
            assert events.status_code == 200 and events.headers["content-type"].startswith(
                "text/event-stream"
            )
        assert browser.post("/auth/logout").status_code == 200
        browser.cookies.clear()
        session = login.cookies.get("dsx_session")
        assert session
        browser.cookies.set("dsx_session", session)
        assert browser.get("/scan/stats").status_code == 401  # the old cookie was ended server-side


def test_an_operator_key_also_works_as_a_bearer_token(core: SecureCore) -> None:
    answer = httpx.get(
        f"{core.api}/scan/stats", headers={"Authorization": f"Bearer {OPERATOR_KEY}"}, timeout=10
    )
    assert answer.status_code == 200


# ---- hardened inputs ----------------------------------------------------------------------------


def test_an_oversized_body_is_413_with_a_message_and_does_nothing(core: SecureCore, alice: Enrolled) -> None:
    before = core.effects()
    big = json.dumps({"requests": [alice.scan_request("x" * 1000)] * 1500}).encode()  # ~2 MiB
    with core.operator() as http:
        declared = http.post("/scan/request_batch", content=big, headers=JSON)

        def chunks():  # type: ignore[no-untyped-def]
            for start in range(0, len(big), 65536):
                yield big[start : start + 65536]

        streamed = http.post("/scan/request_batch", content=chunks(), headers=JSON)
    with core.as_connector(alice) as http:
        signed = http.post("/scan/request_batch", content=big, headers=JSON)
    for answer in (declared, streamed, signed):
        assert answer.status_code == 413, answer.text
        assert "limit" in answer.json()["message"]
    assert core.effects() == before


@pytest.mark.parametrize("body", [b"{not json", b"", b"[]", b'{"requests": "x"}', b"\xff\xfe", b"null"])
def test_malformed_json_is_422_never_500(core: SecureCore, alice: Enrolled, body: bytes) -> None:
    before = core.effects()
    with core.as_connector(alice) as http:
        single = http.post("/scan/request", content=body, headers=JSON)
        batch = http.post("/scan/request_batch", content=body, headers=JSON)
    with core.operator() as http:
        requeue = http.post("/dlq/requeue", content=body, headers=JSON)
    for answer in (single, batch, requeue):
        assert answer.status_code == 422, answer.text
        assert answer.json()["status"] == "error" and "Traceback" not in answer.text
    assert core.effects() == before


@pytest.mark.parametrize(
    "url",
    [
        "http://169.254.169.254/latest/meta-data",
        "http://[fe80::1]/x",
        "http://2852039166/x",
        "http://0xa9fea9fe/x",
        "http://[::ffff:169.254.169.254]/x",
        "http://metadata.google.internal/computeMetadata/v1",
        "http://0.0.0.0:8620/fs",
        "http://user:pass@127.0.0.1:8620/fs",
        "file:///etc/passwd",
        "gopher://127.0.0.1:6379/_FLUSHALL",
    ],
)
def test_registration_refuses_urls_a_worker_must_never_call(core: SecureCore, url: str) -> None:
    body = connector_body(url=url)
    answer = httpx.post(
        f"{core.api}/connectors/register",
        json=body,
        headers={"X-Enrollment-Token": ENROLLMENT_TOKEN},
        timeout=10,
    )
    assert answer.status_code == 422, answer.text
    assert not core.redis.hexists("dsxc:connectors", body["uuid"])


def test_a_scan_request_body_cannot_choose_the_url_a_worker_calls(core: SecureCore, alice: Enrolled) -> None:
    """The queued task carries the connector's uuid, never a URL from the body (workers look it up)."""
    before = core.effects().queued
    evil = "http://169.254.169.254/latest/meta-data"
    with core.as_connector(alice) as http:
        connector = {**alice.body, "url": evil}
        answer = http.post(
            "/scan/request", json={**alice.scan_request(), "connector": connector, "connector_url": evil}
        )
    assert answer.status_code == 202
    queued = core.redis.lrange("scan_request_queue", 0, core.effects().queued - before - 1)
    assert queued and all("169.254" not in message for message in queued)
    assert json.loads(core.redis.hget("dsxc:connectors", alice.uuid))["url"] == alice.body["url"]
