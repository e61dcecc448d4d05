"""The operator-facing surface on a real core with auth on, as an attacker tries it: guessing keys and
tokens on any route, cross-site requests riding a session cookie, another cookie of the host hiding
the session, a stream outliving its session, and the security headers of every answer."""

from __future__ import annotations

import logging
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import closing
from typing import Any

import anyio
import httpx
import pytest
import redis

from shared.logging import request_id_var
from tests.security.conftest import (
    SecureCore,
    clear_guesses,
    connector_body,
    core_environment,
    in_process_core,
)
from tests.support.auth import ENROLLMENT_TOKEN, OPERATOR_KEY
from tests.support.clock import wait_to_clear_window_end

pytestmark = pytest.mark.integration

LIMIT = 10  # DSXCONNECT_AUTH__LOGIN_ATTEMPTS_PER_MIN's default


def login(core: SecureCore) -> httpx.Client:
    browser = httpx.Client(base_url=core.api, timeout=10)
    assert browser.post("/auth/login", json={"api_key": OPERATOR_KEY}).status_code == 200
    return browser


@pytest.mark.parametrize(
    "wrong",
    [
        {"X-API-Key": "guess-0123456789"},
        {"Authorization": "Bearer guess-0123456789"},
    ],
)
def test_api_keys_cannot_be_guessed_on_any_route(core: SecureCore, wrong: dict[str, str]) -> None:
    """Only /auth/login counted failures: a wrong key on any other route was a free guess. Now every
    wrong key spends the source's login budget, and past it even the right key answers 429 (a right
    guess must not be told apart)."""
    time.sleep(wait_to_clear_window_end())  # counted per minute: all in one
    try:
        with httpx.Client(base_url=core.api, timeout=10, headers=wrong) as http:
            codes = [http.get("/scan/jobs").status_code for _ in range(LIMIT)]
            assert codes == [401] * LIMIT
            assert http.get("/scan/jobs").status_code == 429
        with core.operator() as http:
            limited = http.get("/scan/jobs")
        assert limited.status_code == 429 and int(limited.headers["retry-after"]) >= 1
        assert "too many wrong API keys" in limited.json()["message"]
        with core.anonymous() as http:  # the same budget as logins
            assert http.post("/auth/login", json={"api_key": OPERATOR_KEY}).status_code == 429
    finally:
        clear_guesses(core.redis)
    with core.operator() as http:
        assert http.get("/scan/jobs").status_code == 200


def test_a_bearer_on_a_path_that_only_ends_like_the_registration_is_counted(core: SecureCore) -> None:
    """The middleware left a lone Bearer to the registration route on every path ending with
    ``/connectors/register``: elsewhere (a state route here) no route checked it, so operator keys
    could be guessed there without limit, even from a blocked address."""
    time.sleep(wait_to_clear_window_end())
    path = "/connectors/state/abc/connectors/register"
    try:
        with httpx.Client(base_url=core.api, timeout=10) as http:
            wrong = {"Authorization": "Bearer guess-0123456789"}
            codes = [http.get(path, headers=wrong).status_code for _ in range(LIMIT)]
            assert 429 not in codes
            assert http.get(path, headers=wrong).status_code == 429
            right = http.get(path, headers={"Authorization": f"Bearer {OPERATOR_KEY}"})
        assert right.status_code == 429
    finally:
        clear_guesses(core.redis)


def test_enrollment_tokens_cannot_be_guessed(core: SecureCore) -> None:
    time.sleep(wait_to_clear_window_end())
    body = connector_body(str(uuid.uuid4()))
    try:
        with core.anonymous() as http:
            codes = [
                http.post(
                    "/connectors/register", json=body, headers={"X-Enrollment-Token": f"guess-{n:020d}"}
                ).status_code
                for n in range(LIMIT)
            ]
            assert codes == [401] * LIMIT
            right = http.post(
                "/connectors/register", json=body, headers={"X-Enrollment-Token": ENROLLMENT_TOKEN}
            )
        assert right.status_code == 429
    finally:
        clear_guesses(core.redis)


def test_a_minted_enrollment_token_is_not_refused_for_others_guesses_from_its_address(
    core: SecureCore,
) -> None:
    """A 1.x connector registers (its heartbeat) unsigned with a scoped token. Wrong API keys sent from
    the same address (a NAT, an ingress) spent the budget, and its heartbeats answered 429 until the
    minute ended. A minted token is 256 random bits (no guess): it passes; a fleet token, chosen by
    the operator, still answers as a wrong one (test_enrollment_tokens_cannot_be_guessed)."""
    with core.operator() as http:
        token = http.post("/auth/enrollment-tokens", json={"connector_name": "nat-legacy"}).json()["token"]
    body = connector_body(str(uuid.uuid4()), name="nat-legacy")
    time.sleep(wait_to_clear_window_end())  # counted per minute: all in one
    try:
        with httpx.Client(base_url=core.api, timeout=10, headers={"X-API-Key": "guess-0123456789"}) as http:
            assert [http.get("/scan/jobs").status_code for _ in range(LIMIT)] == [401] * LIMIT
        with core.anonymous() as http:
            as_1x = http.post("/connectors/register", json=body, headers={"Authorization": f"Bearer {token}"})
            assert as_1x.status_code == 201, as_1x.text
            again = http.post("/connectors/register", json=body, headers={"X-Enrollment-Token": token})
            assert again.status_code == 200, again.text
            fleet = {"X-Enrollment-Token": ENROLLMENT_TOKEN}
            assert http.post("/connectors/register", json=connector_body(), headers=fleet).status_code == 429
            # a Bearer beside a token is an API key: counted and refused like one
            both = {"X-Enrollment-Token": token, "Authorization": f"Bearer {OPERATOR_KEY}"}
            assert http.post("/connectors/register", json=body, headers=both).status_code == 429
    finally:
        clear_guesses(core.redis)


def test_a_cross_site_request_riding_the_session_cookie_is_refused(core: SecureCore) -> None:
    """SameSite=Strict keeps other sites' pages out, not a sibling app on another port or subdomain
    of the same site: a state-changing call with the session must come from the dashboard's origin."""
    victim = core.enroll(name="csrf-victim")
    host = core.url.removeprefix("http://")
    with closing(login(core)) as browser:
        for headers in (
            {"Sec-Fetch-Site": "same-site", "Origin": "http://grafana.example"},
            {"Sec-Fetch-Site": "cross-site"},
            {"Origin": "http://127.0.0.1:1"},  # an older browser: no Sec-Fetch-Site, another port
            {"Origin": "null"},
            {"Origin": "file://"},  # no host: it matched the absent X-Forwarded-Host's empty value
        ):
            refused = browser.post(
                f"/auth/connectors/{victim.uuid}/reset",
                content=b"",
                headers={**headers, "Content-Type": "application/x-www-form-urlencoded"},
            )
            assert refused.status_code == 403, (headers, refused.text)
            assert "another origin" in refused.json()["message"]
        with core.as_connector(victim) as http:  # nothing was reset
            assert http.post("/scan/request", json=victim.scan_request()).status_code == 202
        assert browser.get("/scan/jobs", headers={"Sec-Fetch-Site": "cross-site"}).status_code == 200  # reads
        # over plain HTTP behind a proxy that rewrites Host (nginx's default): no Sec-Fetch-*, and the
        # dashboard's origin is the proxy's X-Forwarded-Host
        behind_proxy = browser.post(
            f"/auth/connectors/{victim.uuid}/rotate",
            headers={"Origin": "http://dsx.example.com", "X-Forwarded-Host": "dsx.example.com"},
        )
        assert behind_proxy.status_code == 200, behind_proxy.text
        same = browser.post(
            f"/auth/connectors/{victim.uuid}/reset",
            headers={"Sec-Fetch-Site": "same-origin", "Origin": f"http://{host}"},
        )
        assert same.status_code == 200, same.text


def test_another_cookie_of_the_host_does_not_hide_the_session(core: SecureCore) -> None:
    """The strict cookie parser gave up on the whole header when any cookie held a space, a quote or
    JSON: the dashboard then looped on its login while /auth/session said it was signed in."""
    with closing(login(core)) as browser:
        session = browser.cookies["dsx_session"]
        for other in ('theme={"dark":true}', "name=John Smith", 'q="a b"'):
            cookie = f"{other}; dsx_session={session}"
            with httpx.Client(base_url=core.api, timeout=10, headers={"Cookie": cookie}) as http:
                assert http.get("/scan/jobs").status_code == 200, other


def test_an_open_event_stream_ends_with_its_session(core: SecureCore) -> None:
    browser = login(core)
    received: list[str] = []
    ended = threading.Event()

    def read() -> None:
        with browser.stream("GET", "/subscribe/connector-registered", timeout=60) as events:
            for line in events.iter_lines():
                received.append(line)
        ended.set()

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    deadline = time.monotonic() + 20
    while not any(line.startswith("event: connectors") for line in received):
        assert time.monotonic() < deadline, "no snapshot"
        time.sleep(0.05)
    with httpx.Client(base_url=core.api, timeout=10, cookies=dict(browser.cookies)) as other_tab:
        assert other_tab.post("/auth/logout", headers={"Sec-Fetch-Site": "same-origin"}).status_code == 200
    # events go on (registrations); the stream ends at the first one past the recheck interval
    for n in range(40):
        core.enroll(name=f"after-logout-{n}")
        if ended.wait(0.5):
            break
    assert ended.is_set(), "the stream outlived its session"
    browser.close()


@pytest.fixture
def raising_core(redis_url: str) -> Iterator[Any]:
    """An in-process core with one test-only route whose code raises (stands for any bug)."""
    db_url = redis_url.rsplit("/", 1)[0] + "/11"
    with closing(redis.Redis.from_url(db_url)) as conn:
        clear_guesses(conn)  # its operator key must not meet a budget other tests spent
    with core_environment(DSXCONNECT_REDIS_URL=db_url):
        app = in_process_core()

        @app.get("/boom")
        def boom() -> None:
            raise RuntimeError("unexpected: /secret/path in a stack trace")

        app.router.routes.insert(0, app.router.routes.pop())  # before the dashboard's catch-all mount
        yield app


def get_in_process(app: Any, path: str, headers: dict[str, str]) -> httpx.Response:
    async def get() -> httpx.Response:
        transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
        async with httpx.AsyncClient(transport=transport, base_url="http://core") as http:
            return await http.get(path, headers=headers)

    return anyio.run(get)


class RequestIds(logging.Handler):
    """The request id in effect when each record was logged, as the service's formatter reads it."""

    def __init__(self) -> None:
        super().__init__(logging.ERROR)
        self.seen: list[tuple[str, str | None, bool]] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.seen.append((record.getMessage(), request_id_var.get(), record.exc_info is not None))


def test_every_answer_carries_the_security_headers(core: SecureCore, raising_core: Any) -> None:
    with core.anonymous() as http:
        dashboard = httpx.get(core.url + "/", timeout=10)
        api = http.get("/auth/session")
        docs = httpx.get(core.url + "/docs", timeout=10)
    # an unhandled error was answered outside the request's context: no headers, "request_id": null
    logged = RequestIds()
    logging.getLogger().addHandler(logged)
    try:
        failed = get_in_process(raising_core, "/boom", {"X-API-Key": OPERATOR_KEY, "X-Request-ID": "rid-500"})
    finally:
        logging.getLogger().removeHandler(logged)
    assert failed.status_code == 500
    assert failed.json() == {"status": "error", "message": "internal error", "request_id": "rid-500"}
    assert failed.headers["x-request-id"] == "rid-500"
    assert "secret" not in failed.text  # never a stack trace
    assert ("unhandled error", "rid-500", True) in logged.seen  # logged with its traceback and request id
    for answer in (dashboard, api, docs, failed):
        assert answer.headers["x-content-type-options"] == "nosniff"
        assert answer.headers["referrer-policy"] == "no-referrer"
        assert answer.headers["x-frame-options"] == "DENY"
    csp = dashboard.headers["content-security-policy"]
    assert "default-src 'self'" in csp and "frame-ancestors 'none'" in csp and "object-src 'none'" in csp
    assert docs.status_code == 200 and docs.headers["content-security-policy"] == csp  # Swagger UI is ours


def test_signed_heartbeats_are_never_held_back_by_the_guessing_budget(core: SecureCore) -> None:
    """Our connectors send their enrollment token with every heartbeat: checked and counted, a stale
    one locked the address out after ten heartbeats, and ten wrong logins from the address blocked
    every connector behind it."""
    time.sleep(wait_to_clear_window_end())
    alice = core.enroll(name="heartbeat-fleet")
    try:
        with core.as_connector(alice) as http:
            stale = {"X-Enrollment-Token": "revoked-token-0123456789"}
            codes = [
                http.post("/connectors/register", json=alice.body, headers=stale).status_code
                for _ in range(12)
            ]
        assert codes == [200] * 12
        with core.anonymous() as http:
            for n in range(LIMIT):
                http.post("/auth/login", json={"api_key": f"guess-{n:020d}"})
            assert http.post("/auth/login", json={"api_key": OPERATOR_KEY}).status_code == 429
        with core.as_connector(alice) as http:
            beat = http.post(
                "/connectors/register", json=alice.body, headers={"X-Enrollment-Token": ENROLLMENT_TOKEN}
            )
        assert beat.status_code == 200, beat.text
    finally:
        clear_guesses(core.redis)
