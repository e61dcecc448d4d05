"""Removing an operator API key (docs/deployment.md "Keys", docs/security.md on CSRF and streams): the
dashboard sessions it opened end, and an event stream opened with one ends and does not come back.

A key is removed by restarting the API with ``DSXCONNECT_AUTH__API_KEYS`` without it. Sessions live in
Redis and outlast the restart: each keeps the fingerprint of the key that opened it, and the restarted
API refuses a session whose key it no longer has, while sessions of the keys it kept go on."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest
import redis

from tests.security.conftest import API, clear_guesses
from tests.support.auth import OPERATOR_KEY
from tests.support.procs import ServiceProcess, base_env, restartable_port, uvicorn_argv
from tests.support.redis_db import flushed_db

pytestmark = pytest.mark.integration

REMOVED_KEY = "operator-key-being-rotated-out-0123"  # the old key of a rotation
KEPT_KEY = OPERATOR_KEY  # the new one, listed beside it during the rotation, alone after


@pytest.fixture
def core_db(redis_url: str) -> Iterator[tuple[str, redis.Redis]]:
    with flushed_db(redis_url, 11) as conn:
        clear_guesses(conn)
        yield redis_url.rsplit("/", 1)[0] + "/11", conn


@contextmanager
def api(db_url: str, port: int, api_keys: str, logs_dir: Path, name: str) -> Iterator[str]:
    """One API process with ``api_keys``; stopped (SIGTERM, as a rollout does) when the block ends."""
    env = base_env(DSXCONNECT_REDIS_URL=db_url, DSXCONNECT_AUTH__API_KEYS=api_keys)
    proc = ServiceProcess(f"{name}-{port}", uvicorn_argv("dsx_connect.app:app", port), env, logs_dir).start()
    try:
        proc.wait_healthy(f"http://127.0.0.1:{port}/healthz")
        yield f"http://127.0.0.1:{port}{API}"
    finally:
        proc.stop()


def login(base: str, key: str) -> str:
    with httpx.Client(base_url=base, timeout=10) as browser:
        answer = browser.post("/auth/login", json={"api_key": key})
        assert answer.status_code == 200, answer.text
        session = browser.cookies.get("dsx_session")
    assert session
    return session


class Stream:
    """A dashboard's event stream, read in a thread until it ends (any way: closed or cut)."""

    def __init__(self, base: str, session: str) -> None:
        self.http = httpx.Client(
            base_url=base, timeout=httpx.Timeout(10, read=60), cookies={"dsx_session": session}
        )
        self.lines: list[str] = []
        self.opened = threading.Event()
        self.ended = threading.Event()
        self.status: int | None = None
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        try:
            with self.http.stream("GET", "/subscribe/connector-registered") as events:
                self.status = events.status_code
                for line in events.iter_lines():
                    self.lines.append(line)
                    if line.startswith("event: connectors"):
                        self.opened.set()  # the snapshot: the stream is open and was authorised
        except httpx.HTTPError:
            pass  # cut by the server going away: ended all the same
        finally:
            self.ended.set()

    def close(self) -> None:
        self.http.close()


def test_removing_an_api_key_ends_its_sessions_and_their_open_streams(
    core_db: tuple[str, redis.Redis], logs_dir: Path
) -> None:
    db_url, _ = core_db
    port = restartable_port()  # the same address before and after the restart, as the browser knows it
    with api(db_url, port, f"{REMOVED_KEY},{KEPT_KEY}", logs_dir, "before-rotation") as base:
        removed, kept = login(base, REMOVED_KEY), login(base, KEPT_KEY)
        stream = Stream(base, removed)
        assert stream.opened.wait(20), f"no snapshot: status {stream.status}, lines {stream.lines}"
        assert not stream.ended.is_set()
    # the API restarted without the key: the stream opened with its session is over ...
    assert stream.ended.wait(20), "the stream outlived the removal of its key"
    stream.close()
    with api(db_url, port, KEPT_KEY, logs_dir, "after-rotation") as base:
        with httpx.Client(base_url=base, timeout=10, cookies={"dsx_session": removed}) as browser:
            assert browser.get("/scan/stats").status_code == 401
            assert browser.get("/auth/session").json() == {"auth_enabled": True, "authenticated": False}
            # ... and the browser's reconnect (EventSource retries on its own) is refused
            assert browser.get("/subscribe/connector-registered").status_code == 401
        # the sessions of the key kept outlast the restart: what ended the other is its key's removal
        with httpx.Client(base_url=base, timeout=10, cookies={"dsx_session": kept}) as browser:
            assert browser.get("/scan/stats").status_code == 200
            assert browser.get("/auth/session").json()["authenticated"] is True
            again = Stream(base, kept)
            assert again.opened.wait(20) and again.status == 200
        assert httpx.post(f"{base}/auth/login", json={"api_key": REMOVED_KEY}, timeout=10).status_code == 401
    assert again.ended.wait(20)
    again.close()
