"""Notification webhooks: settings refused with the variable named, Standard Webhooks signatures checked
by the reference library in a real receiver process, verdict filters, downtime and recovery (real Redis)."""

from __future__ import annotations

import base64
import json
import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import redis
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from dsx_connect.notifications.config import NotificationsSettings
from dsx_connect.notifications.fanout import WebhookFanout
from dsx_connect.notifications.runner import delivery_settings
from dsx_connect.notifications.sink import WebhookSink, message_id, signature
from dsx_connect.notifications.status import webhook_metrics, webhook_stats
from dsx_connect.settings import Settings
from dsx_connect.superlog.forwarder import ForwarderGroup
from shared.errors import RetryableError
from shared.settings import SettingsError, load_settings
from tests.support.procs import restartable_port, wait_for
from tests.support.redis_db import flushed_db
from tests.support.threaded_server import serving
from tests.support.webhook_receiver import Receiver, running_receiver

SECRET = "whsec_" + base64.b64encode(b"a webhook secret of 32 bytes....").decode()
REDIS_DB = 13


@pytest.fixture(autouse=True)
def _no_core_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in list(os.environ):
        if name.startswith("DSXCONNECT_"):
            monkeypatch.delenv(name)


def event(n: int, verdict: str) -> str:
    return json.dumps({"event_type": "scan_result", "schema_version": 1, "timestamp": "2026-12-04T12:00:00.000Z",
                       "scan_request_id": f"req-{n}", "job_id": "job-1", "location": f"in/f{n}.txt",
                       "metainfo": f"f{n}.txt", "verdict": verdict, "severity": 2})  # fmt: skip


# ---------------------------------------------------------------- settings


@pytest.mark.unit
def test_webhooks_are_read_from_json_with_secret_and_verdict_filter(monkeypatch: pytest.MonkeyPatch) -> None:
    hooks = [{"url": "https://siem.example/hook?token=t", "secret": SECRET, "verdicts": ["Malicious"]},
             {"url": "http://10.0.0.5:8080/all", "secret": SECRET}]  # fmt: skip
    monkeypatch.setenv("DSXCONNECT_NOTIFICATIONS__WEBHOOKS", json.dumps(hooks))
    settings = load_settings(Settings)
    first, second = settings.notifications.webhooks
    assert first.wants("Malicious") and not first.wants("Benign") and second.wants("Benign")
    shown = json.dumps(settings.redacted())
    assert SECRET not in shown and "token=t" not in shown and "https://siem.example/hook" in shown


@pytest.mark.unit
@pytest.mark.parametrize(
    ("hook", "problem"),
    [
        ({"url": "http://169.254.169.254/latest", "secret": SECRET}, "link-local or cloud metadata"),
        ({"url": "http://[::ffff:169.254.169.254]/", "secret": SECRET}, "link-local or cloud metadata"),
        ({"url": "http://metadata.google.internal/x", "secret": SECRET}, "link-local or cloud metadata"),
        ({"url": "ftp://siem.example/hook", "secret": SECRET}, "must be an http"),
        ({"url": "https://user:pw@siem.example/hook", "secret": SECRET}, "must not carry credentials"),
        ({"url": "https://siem.example/hook", "secret": "not base64!"}, "secret must be base64"),
        ({"url": "https://siem.example/hook", "secret": "c2hvcnQ="}, "at least 16 bytes"),
        ({"url": "https://siem.example/hook", "secret": SECRET, "verdicts": ["Evil"]}, "unknown verdicts"),
        ({"url": "https://siem.example/hook"}, "WEBHOOKS__0__SECRET: Field required"),
    ],
)
def test_a_bad_webhook_stops_the_core_naming_the_variable(
    monkeypatch: pytest.MonkeyPatch, hook: dict[str, Any], problem: str
) -> None:
    monkeypatch.setenv("DSXCONNECT_NOTIFICATIONS__WEBHOOKS", json.dumps([hook]))
    with pytest.raises(SettingsError, match="DSXCONNECT_NOTIFICATIONS__WEBHOOKS") as info:
        load_settings(Settings)
    assert problem in str(info.value)


@pytest.mark.unit
@pytest.mark.parametrize(
    ("hooks", "secret", "problem"),
    [
        ([{"url": "https://siem.example/hook", "secret": "my-raw-shared-secret-1234"}],
         "my-raw-shared-secret-1234", "WEBHOOKS__0__SECRET: Value error, secret must be base64"),
        ([{"url": "http://169.254.169.254/", "secret": SECRET}], SECRET, "link-local or cloud metadata"),
        ([{"url": "https://siem.example/a", "secret": SECRET}, {"url": "https://siem.example/a", "secret": SECRET}],
         SECRET, "a URL is listed twice"),
        ([{"url": "https://siem.example/hook", "secret": SECRET, "verdicts": "Malicious"}], SECRET,
         "VERDICTS: Input should be a valid list (got 'Malicious')"),  # not a secret: shown
    ],
)  # fmt: skip
def test_a_refused_webhook_is_named_without_showing_its_secret(
    monkeypatch: pytest.MonkeyPatch, hooks: list[dict[str, Any]], secret: str, problem: str
) -> None:
    """SPEC §8: logs never show a secret, and the start-up error is a log line."""
    monkeypatch.setenv("DSXCONNECT_NOTIFICATIONS__WEBHOOKS", json.dumps(hooks))
    with pytest.raises(SettingsError, match="DSXCONNECT_NOTIFICATIONS__WEBHOOKS") as info:
        load_settings(Settings)
    message = str(info.value)
    assert problem in message
    assert (
        secret not in message
        and secret[:20] not in message
        and secret.removeprefix("whsec_")[:12] not in message
    )


@pytest.mark.unit
def test_a_settings_error_hides_values_of_secret_fields_but_shows_others() -> None:
    from pydantic import BaseModel, SecretStr
    from pydantic_settings import BaseSettings, SettingsConfigDict

    class Inner(BaseModel):
        secret: SecretStr
        port: int = 1

    class Toy(BaseSettings):
        model_config = SettingsConfigDict(env_prefix="TOY_", env_nested_delimiter="__")
        api_key: int = 0
        inner: Inner | None = None
        inners: list[Inner] = []
        timeout: int = 1
        url: int = 0

    with pytest.raises(SettingsError) as info:
        load_settings(
            Toy,
            api_key="key-1234-abcd",
            inner={"secret": "s", "port": "port-9999"},
            inners='[{"secret": 3}]',
            timeout="slow-12",
            url="redis://:pass-5678@redis:6379",
        )
    message = str(info.value)
    assert "TOY_URL" in message and "pass-5678" not in message  # a URL's credentials
    assert "TOY_API_KEY" in message and "key-1234-abcd" not in message  # a secret's name
    assert "TOY_INNERS" in message and '"secret": 3' not in message  # JSON of a model holding a secret
    assert "TOY_TIMEOUT" in message and "slow-12" in message  # anything else is shown
    assert "TOY_INNER__PORT" in message and "port-9999" in message


TOKEN = "Xy7-secret-path-token_0123456789abcdef"


@pytest.mark.unit
@pytest.mark.parametrize(
    ("url", "shown"),
    [
        (f"https://hooks.zapier.com/hooks/catch/1234567/{TOKEN}/", "https://hooks.zapier.com/hooks/…"),
        (f"https://discord.com/api/webhooks/123456789012345678/{TOKEN}", "https://discord.com/api/…"),
        (f"https://n8n.example:5678/webhook/{TOKEN}", "https://n8n.example:5678/webhook/…"),
        (f"https://siem.example/{TOKEN}", "https://siem.example/…"),  # one segment, but a token's length
        (f"https://siem.example/hook?token={TOKEN}", "https://siem.example/hook?…"),
        ("http://10.0.0.5:8080/all", "http://10.0.0.5:8080/all"),
        ("https://siem.example", "https://siem.example"),
    ],
)
def test_the_shown_url_masks_a_token_in_the_path_or_query(url: str, shown: str) -> None:
    hook = NotificationsSettings(webhooks=[{"url": url, "secret": SECRET}]).webhooks[0]  # type: ignore[list-item]
    assert hook.shown_url == shown


@pytest.mark.integration
def test_a_token_in_the_path_shows_nowhere(
    monkeypatch: pytest.MonkeyPatch, hook_redis: redis.Redis, caplog: pytest.LogCaptureFixture
) -> None:
    """Config, stats, errors and logs show scheme, host and the first path segment only."""
    url = f"http://127.0.0.1:9/api/webhooks/123456789012345678/{TOKEN}"  # nothing listens on port 9
    settings = settings_for({"url": url, "secret": SECRET})
    assert TOKEN not in json.dumps(settings.redacted())
    assert TOKEN not in json.dumps(webhook_stats(hook_redis, settings.notifications))
    sink = WebhookSink(settings.notifications.webhooks[0], settings.notifications)
    with pytest.raises(RetryableError) as error:
        sink.send([sink.encode(json.loads(event(1, "Malicious")))])
    sink.close()
    assert "http://127.0.0.1:9/api/…" in error.value.message and TOKEN not in error.value.message
    small = NotificationsSettings(webhooks=[{"url": url, "secret": SECRET}], buffer_max_events=1)  # type: ignore[list-item]
    WebhookFanout(hook_redis, small).publish([event(n, "Benign") for n in range(3)])
    assert "buffer full" in caplog.text and TOKEN not in caplog.text
    monkeypatch.setenv("DSXCONNECT_NOTIFICATIONS__WEBHOOKS", json.dumps([{"url": url, "secret": SECRET}] * 2))
    with pytest.raises(SettingsError) as refused:
        load_settings(Settings)
    assert "listed twice" in str(refused.value) and TOKEN not in str(refused.value)
    monkeypatch.setenv(
        "DSXCONNECT_NOTIFICATIONS__WEBHOOKS",
        json.dumps([{"url": f"http://169.254.169.254/api/{TOKEN}", "secret": SECRET}]),
    )
    with pytest.raises(SettingsError) as refused:
        load_settings(Settings)
    assert "link-local" in str(refused.value) and TOKEN not in str(refused.value)


@pytest.mark.unit
def test_link_local_receivers_need_the_explicit_switch() -> None:
    hook = {"url": "http://169.254.10.10/hook", "secret": SECRET}
    assert NotificationsSettings(webhooks=[hook], allow_link_local=True).webhooks  # type: ignore[list-item]


@pytest.mark.unit
def test_the_signature_verifies_with_the_reference_library() -> None:
    from standardwebhooks.webhooks import Webhook

    body = b'{"type":"scan_result","data":{}}'
    import time

    now = int(time.time())
    key = base64.b64decode(SECRET.removeprefix("whsec_"))
    headers = {
        "webhook-id": "req-1",
        "webhook-timestamp": str(now),
        "webhook-signature": signature(key, "req-1", now, body),
    }
    assert Webhook(SECRET).verify(body, headers) == {"type": "scan_result", "data": {}}
    assert headers["webhook-signature"].startswith("v1,")


# ---------------------------------------------------------------- delivery (real Redis, real receiver)


@pytest.fixture
def hook_redis(redis_url: str) -> Iterator[redis.Redis]:
    with flushed_db(redis_url, REDIS_DB) as client:
        yield client


@pytest.fixture
def receiver(logs_dir: Path) -> Iterator[Receiver]:
    with running_receiver(SECRET, logs_dir) as running:
        yield running


def settings_for(*hooks: dict[str, Any]) -> Settings:
    fast = {"flush_interval_s": 0.02, "lock_ttl_s": 5}
    return Settings(  # type: ignore[call-arg]
        _env_file=None,
        notifications={"webhooks": list(hooks), "retry_backoff_s": 0.05, "retry_backoff_max_s": 0.3},
        superlog=fast,
    )


def forwarders(client: redis.Redis, settings: Settings) -> ForwarderGroup:
    sinks = [WebhookSink(hook, settings.notifications) for hook in settings.notifications.webhooks]
    return ForwarderGroup(client, settings, sinks=sinks, feed=delivery_settings(settings)).start()


@pytest.mark.integration
def test_each_wanted_event_arrives_signed_once(hook_redis: redis.Redis, receiver: Receiver) -> None:
    settings = settings_for(
        {"url": receiver.url, "secret": SECRET, "verdicts": ["Malicious"]},
        {"url": receiver.url + "?all=1", "secret": SECRET},
    )
    events = [event(n, "Malicious" if n % 3 == 0 else "Benign") for n in range(9)]
    assert WebhookFanout(hook_redis, settings.notifications).publish(events) == 3 + 9
    group = forwarders(hook_redis, settings)
    try:
        wait_for(lambda: len(receiver.received()) == 12, timeout=20, what="12 verified deliveries")
    finally:
        group.stop()
    got = receiver.received()
    assert receiver.refused() == []
    assert sorted(m["message"]["data"]["scan_request_id"] for m in got) == sorted(
        [f"req-{n}" for n in range(9)] + ["req-0", "req-3", "req-6"]
    )
    assert all(m["id"] == message_id(m["message"]["data"]) for m in got)
    first = next(m["message"] for m in got if m["message"]["data"]["scan_request_id"] == "req-3")
    assert first["type"] == "scan_result" and first["data"]["verdict"] == "Malicious"
    filtered, everything = webhook_stats(hook_redis, settings.notifications)["webhooks"]
    assert (filtered["verdicts"], filtered["sent"], filtered["status"]) == (["Malicious"], 3, "up")
    assert (everything["verdicts"], everything["sent"]) == (None, 9)


@pytest.mark.integration
def test_a_wrong_secret_is_refused_by_the_receiver_and_retried_not_lost(
    hook_redis: redis.Redis, receiver: Receiver
) -> None:
    other = "whsec_" + base64.b64encode(b"another secret, also 32 bytes...").decode()
    settings = settings_for({"url": receiver.url, "secret": other})
    WebhookFanout(hook_redis, settings.notifications).publish([event(1, "Malicious")])
    group = forwarders(hook_redis, settings)
    try:
        wait_for(lambda: receiver.refused(), timeout=20, what="the receiver to refuse the signature")
        state = webhook_stats(hook_redis, settings.notifications)["webhooks"][0]
        wait_for(
            lambda: webhook_stats(hook_redis, settings.notifications)["webhooks"][0]["status"] == "down",
            timeout=10,
        )
    finally:
        group.stop()
    state = webhook_stats(hook_redis, settings.notifications)["webhooks"][0]
    assert state["backlog"] == 1 and state["sent"] == 0 and "HTTP 401" in state["last_error"]
    assert receiver.received() == []


@pytest.mark.integration
def test_receiver_downtime_then_recovery_delivers_everything(hook_redis: redis.Redis, logs_dir: Path) -> None:
    port = restartable_port()  # tried while nothing listens, then served
    url = f"http://127.0.0.1:{port}/hook"
    settings = settings_for({"url": url, "secret": SECRET})
    fanout = WebhookFanout(hook_redis, settings.notifications)
    group = forwarders(hook_redis, settings)
    try:
        fanout.publish([event(n, "Benign") for n in range(5)])  # nobody listens yet
        stats = lambda: webhook_stats(hook_redis, settings.notifications)["webhooks"][0]  # noqa: E731
        wait_for(lambda: stats()["status"] == "down", timeout=10, what="the webhook to be down")
        assert stats()["backlog"] == 5 and stats()["failures"] >= 1
        metrics = "\n".join(webhook_metrics(hook_redis, settings.notifications))
        assert (
            f'dsxconnect_webhook_up{{webhook="{settings.notifications.webhooks[0].destination}"}} 0'
            in metrics
        )

        with running_receiver(SECRET, logs_dir, port=port) as receiver:
            fanout.publish([event(n, "Malicious") for n in range(5, 8)])  # while it is back
            wait_for(lambda: len(receiver.received()) == 8, timeout=30, what="every event after the recovery")
            in_order = [m["message"]["data"]["scan_request_id"] for m in receiver.received()]
            assert in_order == [f"req-{n}" for n in range(8)]
            wait_for(lambda: stats()["status"] == "up", timeout=10)
    finally:
        group.stop()
    state = stats()
    assert (state["sent"], state["backlog"], state["dropped"], state["rejected"]) == (8, 0, 0, 0)
    metrics = "\n".join(webhook_metrics(hook_redis, settings.notifications))
    assert (
        f'dsxconnect_webhook_sent_total{{webhook="{settings.notifications.webhooks[0].destination}"}} 8'
        in metrics
    )


@pytest.mark.integration
def test_a_full_buffer_drops_the_oldest_and_counts_them(hook_redis: redis.Redis) -> None:
    settings = Settings(  # type: ignore[call-arg]
        _env_file=None,
        notifications={
            "webhooks": [{"url": "http://127.0.0.1:9/hook", "secret": SECRET}],
            "buffer_max_events": 3,
        },
    )
    WebhookFanout(hook_redis, settings.notifications).publish([event(n, "Benign") for n in range(5)])
    state = webhook_stats(hook_redis, settings.notifications)["webhooks"][0]
    assert (state["backlog"], state["dropped"]) == (3, 2)


# ---------------------------------------------------------------- ids and redirects (in-process receivers)


Answer = Callable[[int], Response]


def recorder(answer: Answer) -> tuple[Starlette, list[dict[str, Any]]]:
    """A receiver that records every call (id, verified or not, event, status answered); ``answer``
    gets the number of calls before this one and returns the response."""
    calls: list[dict[str, Any]] = []

    async def hook(request: Request) -> Response:
        from standardwebhooks.webhooks import Webhook, WebhookVerificationError

        body = await request.body()
        try:
            Webhook(SECRET).verify(body, dict(request.headers))
            verified = True
        except WebhookVerificationError:
            verified = False
        response = answer(len(calls))
        calls.append(
            {
                "id": request.headers.get("webhook-id"),
                "verified": verified,
                "data": json.loads(body)["data"],
                "status": response.status_code,
            }
        )
        return response

    return Starlette(routes=[Route("/hook", hook, methods=["POST"])]), calls


@pytest.mark.integration
def test_a_replacing_outcome_gets_a_new_id_and_a_retried_delivery_the_same(hook_redis: redis.Redis) -> None:
    """A failed result (Not Scanned) replaced by a requeued attempt's Malicious verdict is fed out again
    for the same request. The webhook-id used to be the request id alone: a receiver dropping
    duplicates, as the README advises, threw the Malicious verdict away. Each stored outcome has its
    own id now; a delivery retried after a 503, or fed twice (the notification step run again), keeps it."""
    from dsx_connect.state.results import ResultStore
    from shared.models import EventConnector, EventError, EventFileInfo, ScanResultEvent

    def outcome(verdict: str, **extra: Any) -> ScanResultEvent:
        return ScanResultEvent(
            scan_request_id="r1", job_id="j1", connector=EventConnector(name="fs", uuid="c1"),
            location="in/eicar.txt", verdict=verdict, file_info=EventFileInfo(size_in_bytes=68), **extra,
        )  # fmt: skip

    app, calls = recorder(lambda n: Response(status_code=503 if n == 0 else 204))
    with serving(app, name="webhook-recorder") as base:
        settings = settings_for({"url": f"{base}/hook", "secret": SECRET})
        results, fanout = (
            ResultStore(hook_redis, retain=100),
            WebhookFanout(hook_redis, settings.notifications),
        )
        failed = outcome("Not Scanned", error=EventError(kind="exhausted", message="scanner down"))
        assert results.store_many([failed]) == [True]
        fanout.publish([text for text in results.get_many(["r1"]) if text])  # as the notification step does
        assert results.store_many([outcome("Malicious")]) == [True], "the failure is replaced"
        for _ in range(2):  # the replacing outcome, fed twice
            fanout.publish([text for text in results.get_many(["r1"]) if text])
        group = forwarders(hook_redis, settings)
        try:
            wait_for(lambda: len(calls) == 4, timeout=20, what="a failed call, then three deliveries")
        finally:
            group.stop()
    assert all(call["verified"] for call in calls)
    assert [(c["data"]["verdict"], c["status"]) for c in calls] == [
        ("Not Scanned", 503), ("Not Scanned", 204), ("Malicious", 204), ("Malicious", 204),
    ]  # fmt: skip
    ids = [call["id"] for call in calls]
    assert ids[0] == ids[1], "a retried delivery keeps its id"
    assert ids[2] == ids[3], "one outcome fed twice keeps its id: the receiver drops the copy"
    assert ids[1] != ids[2], "the replacing outcome has a new id: a receiver dropping duplicates keeps it"
    assert all(c["data"]["scan_request_id"] == "r1" and c["id"].startswith("r1.") for c in calls)


@pytest.mark.unit
def test_the_id_of_an_outcome_does_not_depend_on_redaction() -> None:
    """Redaction settings may change while events wait in a buffer: their ids stay."""
    from dsx_connect.superlog.config import RedactSettings
    from dsx_connect.superlog.events import Redactor

    data = json.loads(event(1, "Malicious"))
    hashed = Redactor(RedactSettings(location="hash", metainfo="drop", salt="pepper-pepper"))(data)
    assert hashed["location"] != data["location"] and "metainfo" not in hashed
    assert message_id(hashed) == message_id(data)
    assert message_id({**data, "verdict": "Benign"}) != message_id(data)


@pytest.mark.integration
def test_a_redirect_is_not_followed_and_the_event_is_kept_and_retried(hook_redis: redis.Redis) -> None:
    """README: redirects are not followed. A receiver answering 307 to another URL is a failed call
    (the webhook shows down with the status); the other URL gets nothing; the event stays buffered."""
    target_app, target_calls = recorder(lambda n: Response(status_code=204))
    with serving(target_app, name="redirect-target") as target:
        app, calls = recorder(lambda n: Response(status_code=307, headers={"Location": f"{target}/hook"}))
        with serving(app, name="redirecting-receiver") as base:
            settings = settings_for({"url": f"{base}/hook", "secret": SECRET})
            WebhookFanout(hook_redis, settings.notifications).publish([event(1, "Malicious")])
            group = forwarders(hook_redis, settings)
            stats = lambda: webhook_stats(hook_redis, settings.notifications)["webhooks"][0]  # noqa: E731
            try:
                wait_for(lambda: len(calls) >= 2, timeout=20, what="the call to be retried")
                wait_for(lambda: stats()["status"] == "down", timeout=10, what="the webhook marked down")
            finally:
                group.stop()
        assert target_calls == []
    assert {c["status"] for c in calls} == {307} and len({c["id"] for c in calls}) == 1
    state = stats()
    assert (state["backlog"], state["sent"], state["rejected"]) == (1, 0, 0)
    assert "HTTP 307" in state["last_error"]
