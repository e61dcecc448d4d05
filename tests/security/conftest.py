"""A real core with auth on (the test secrets of ``tests.support.auth``), and helpers an attacker uses.

``secure_core`` is one API process for the folder: request bodies capped at 1 MiB, a 30 s rotation
grace, no scanner (nothing here needs a verdict). :class:`Effects` snapshots what a request could
have changed (queued tasks, request records, jobs, registrations, dead letters) so a refused request
can be shown to have done nothing.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
import redis

from dsx_connect import keys
from dsx_connect.settings import get_settings
from shared.hmac_auth import DsxHmacAuth, Signer
from tests.support.auth import AUTH_ENV, ENROLLMENT_TOKEN, OPERATOR_KEY
from tests.support.procs import ServiceProcess, base_env, free_port, uvicorn_argv

API = "/dsx-connect/api/v1"
MAX_BODY = 1 << 20
GRACE_S = 30
FAILED_SIGNATURES_PER_MIN = (
    1000  # the forgery tests refuse many; tests/security/test_identity.py checks the limit
)


def connector_body(uid: str | None = None, **extra: Any) -> dict[str, Any]:
    return {
        "name": "filesystem-connector",
        "uuid": uid or str(uuid.uuid4()),
        "url": "http://127.0.0.1:9/filesystem-connector",
        "asset": "/data",
        "status": "ready",
        **extra,
    }


@dataclass
class Enrolled:
    """A connector as the core registered it, with the pair it received."""

    body: dict[str, Any]
    key_id: str
    secret: str

    @property
    def uuid(self) -> str:
        return str(self.body["uuid"])

    def signer(self) -> Signer:
        return Signer(self.key_id, self.secret)

    def scan_request(self, location: str = "a.txt", **extra: Any) -> dict[str, Any]:
        return {"connector": self.body, "location": location, "metainfo": location, **extra}


@dataclass(frozen=True)
class Effects:
    queued: int
    requests: int
    jobs: int
    connectors: int
    dead_letters: int


@dataclass
class SecureCore:
    url: str
    redis: redis.Redis
    proc: ServiceProcess

    @property
    def api(self) -> str:
        return self.url + API

    def anonymous(self) -> httpx.Client:
        return httpx.Client(base_url=self.api, timeout=10.0)

    def operator(self) -> httpx.Client:
        return httpx.Client(base_url=self.api, timeout=10.0, headers={"X-API-Key": OPERATOR_KEY})

    def as_connector(self, who: Enrolled) -> httpx.Client:
        return httpx.Client(base_url=self.api, timeout=10.0, auth=DsxHmacAuth(who.signer()))

    def enroll(self, **extra: Any) -> Enrolled:
        body = connector_body(**extra)
        with self.anonymous() as http:
            answer = http.post(
                "/connectors/register", json=body, headers={"X-Enrollment-Token": ENROLLMENT_TOKEN}
            )
        assert answer.status_code == 201, answer.text
        data = answer.json()
        return Enrolled(body, data["hmac_key_id"], data["hmac_secret"])

    def effects(self) -> Effects:
        r = self.redis
        return Effects(
            queued=int(r.llen("scan_request_queue")),
            requests=sum(1 for _ in r.scan_iter(f"{keys.PREFIX}:req:*", count=1000)),
            jobs=int(r.zcard(keys.JOBS_INDEX)),
            connectors=int(r.hlen(keys.CONNECTORS)),
            dead_letters=int(r.hlen(keys.DEAD_LETTERS)),
        )


@pytest.fixture(scope="package")
def secure_core(redis_url: str, logs_dir: Path) -> Iterator[SecureCore]:
    db_url = redis_url.rsplit("/", 1)[0] + "/9"
    conn = redis.Redis.from_url(db_url, decode_responses=True)
    conn.flushdb()
    port = free_port()
    env = base_env(
        DSXCONNECT_REDIS_URL=db_url,
        DSXCONNECT_SCANNER__SCAN_BINARY_URL=f"http://127.0.0.1:{free_port()}/scan/binary/v2",
        DSXCONNECT_MAX_REQUEST_BYTES=str(MAX_BODY),
        DSXCONNECT_AUTH__KEY_ROTATION_GRACE_S=str(GRACE_S),
        DSXCONNECT_AUTH__ALLOW_FLEET_REENROLL="false",
        DSXCONNECT_AUTH__FAILED_SIGNATURES_PER_MIN=str(FAILED_SIGNATURES_PER_MIN),
    )
    proc = ServiceProcess(
        f"secure-core-{port}", uvicorn_argv("dsx_connect.app:app", port), env, logs_dir
    ).start()
    try:
        proc.wait_healthy(f"http://127.0.0.1:{port}/healthz")
        yield SecureCore(f"http://127.0.0.1:{port}", conn, proc)
    finally:
        proc.stop()
        conn.flushdb()
        conn.close()


@pytest.fixture
def core(secure_core: SecureCore) -> SecureCore:
    # every test here calls from 127.0.0.1, and many present wrong keys on purpose: each starts with
    # the source's budget of wrong keys and logins (AUTH__LOGIN_ATTEMPTS_PER_MIN) untouched
    clear_guesses(secure_core.redis)
    return secure_core


def clear_guesses(r: redis.Redis) -> None:
    for key in r.scan_iter("dsxc:auth:rl:login:*"):
        r.delete(key)


@pytest.fixture
def alice(core: SecureCore) -> Enrolled:
    return core.enroll(name="alice-connector")


@pytest.fixture
def bob(core: SecureCore) -> Enrolled:
    return core.enroll(name="bob-connector")


def header_for(who: Enrolled, method: str, path_q: str, body: bytes = b"", ts: int | None = None) -> str:
    return who.signer().authorization(method, path_q, body, ts=int(time.time()) if ts is None else ts)


@contextmanager
def core_environment(**extra: str) -> Iterator[None]:
    """The core's settings read from the test secrets (auth on) and ``extra``, for an in-process app."""
    with pytest.MonkeyPatch.context() as patch:
        for name, value in {**AUTH_ENV, "DSXCONNECT_AUTH__ALLOW_FLEET_REENROLL": "false", **extra}.items():
            patch.setenv(name, value)
        get_settings.cache_clear()
        try:
            yield
        finally:
            get_settings.cache_clear()


def in_process_core() -> Any:
    """A core app built in this process (so a test can replace its resolver); settings from the env."""
    import importlib

    return importlib.import_module("dsx_connect.app").create_app()
