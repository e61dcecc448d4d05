"""SNS message verification on the S3 connector's webhook: signatures, certificate URL, topics."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
from collections.abc import AsyncIterator, Iterator
from typing import Any

import httpx
import pytest

from connectors.aws_s3 import sns as sns_module
from connectors.aws_s3.connector import AwsS3Connector
from connectors.aws_s3.settings import AwsS3Settings
from connectors.aws_s3.sns import DEFAULT_URL_PATTERN, SnsVerifier, trusted_subscribe_url, url_allowed
from shared.connector import create_connector_app
from shared.connector.webhook_auth import WebhookRefused, WebhookUnavailable
from tests.connectors.aws_s3.conftest import s3_event
from tests.support.procs import free_port
from tests.support.webhook_senders import FileServer, SnsSender, file_server, self_signed_pem, sns_timestamp

pytestmark = [pytest.mark.unit, pytest.mark.anyio]

PREFIX = "/aws-s3-connector"


@pytest.fixture(scope="module")
def server() -> Iterator[FileServer]:
    with file_server() as running:
        yield running


@pytest.fixture(scope="module")
def sns(server: FileServer) -> SnsSender:
    return SnsSender(server)


def app_for(sns: SnsSender, **settings: Any) -> Any:
    base = {
        "asset": "uploads/in",
        "aws_endpoint_url": "http://127.0.0.1:9",
        "aws_region": "us-east-1",
        "aws_sns_topic_arns": "arn:aws:sns:*:123456789012:dsx-*",
        "aws_sns_url_pattern": sns.url_pattern,
    }
    return create_connector_app(AwsS3Connector(AwsS3Settings(**(base | settings))))


@pytest.fixture
def app(sns: SnsSender) -> Any:
    return app_for(sns)


@pytest.fixture
async def client(app: Any) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as http:
        yield http


async def post(client: httpx.AsyncClient, message: dict[str, Any]) -> httpx.Response:
    headers = {
        "content-type": "text/plain; charset=UTF-8",
        "x-amz-sns-message-type": str(message.get("Type")),
    }
    return await client.post(f"{PREFIX}/webhook/event", content=json.dumps(message), headers=headers)


def refused(app: Any) -> int:
    """Refusals counted, as ``/readyz`` shows them (not called here: the S3 endpoint is unreachable)."""
    return int(app.state.webhooks.stats()["refused"])


@pytest.mark.parametrize("version", ["1", "2"])
async def test_a_signed_notification_is_accepted(
    client: httpx.AsyncClient, sns: SnsSender, version: str
) -> None:
    response = await post(client, sns.sign(sns.notification(s3_event("uploads", "in/a.txt", 3)), version))
    assert response.status_code == 200, response.text
    assert response.json()["status"] == "success"


async def test_a_tampered_notification_is_refused_and_counted(
    client: httpx.AsyncClient, app: Any, sns: SnsSender
) -> None:
    signed = sns.sign(sns.notification(s3_event("uploads", "in/a.txt", 3)))
    signed["Message"] = json.dumps(s3_event("uploads", "in/other.txt", 3))
    response = await post(client, signed)
    assert response.status_code == 401 and "signature does not match" in response.json()["message"]
    assert refused(app) == 1


async def test_an_unsigned_or_direct_s3_event_is_refused(
    client: httpx.AsyncClient, app: Any, sns: SnsSender
) -> None:
    assert (await post(client, sns.notification(s3_event("uploads", "in/a.txt", 3)))).status_code == 401
    direct = await client.post(f"{PREFIX}/webhook/event", json=s3_event("uploads", "in/a.txt", 3))
    assert direct.status_code == 401 and "through SNS only" in direct.json()["message"]
    garbage = await client.post(f"{PREFIX}/webhook/event", content=b"{oops")
    assert garbage.status_code == 401
    assert refused(app) == 3


async def test_a_signature_by_another_key_is_refused(client: httpx.AsyncClient, sns: SnsSender) -> None:
    from cryptography.hazmat.primitives.asymmetric import rsa

    other = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    forged = sns.sign(sns.notification(s3_event("uploads", "in/a.txt", 3)), key=other)
    assert (await post(client, forged)).status_code == 401


async def test_a_certificate_outside_the_allowed_urls_is_never_fetched(
    client: httpx.AsyncClient, sns: SnsSender, server: FileServer
) -> None:
    port = server.url.rsplit(":", 1)[1]
    elsewhere = f"http://localhost:{port}/SimpleNotificationService-test.pem"  # the same file, another host
    before = len(server.requests)
    message = sns.sign(sns.notification(s3_event("uploads", "in/a.txt", 3), SigningCertURL=elsewhere))
    response = await post(client, message)
    assert response.status_code == 401 and "SigningCertURL refused" in response.json()["message"]
    assert len(server.requests) == before


async def test_the_certificate_is_fetched_once_and_cached(sns: SnsSender, server: FileServer) -> None:
    app = app_for(sns)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as client:
        before = server.requests.count("/SimpleNotificationService-test.pem")
        for key in ("in/a.txt", "in/b.txt", "in/c.txt"):
            message = sns.sign(sns.notification(s3_event("uploads", key, 3)))
            assert (await post(client, message)).status_code == 200
        assert server.requests.count("/SimpleNotificationService-test.pem") == before + 1


async def test_messages_naming_one_new_certificate_share_its_fetch(
    sns: SnsSender, server: FileServer
) -> None:
    path = "/SimpleNotificationService-shared.pem"
    server.files[path] = server.files["/SimpleNotificationService-test.pem"]
    url = f"{server.url}{path}"
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app_for(sns)), base_url="http://t"
    ) as client:
        messages = [
            sns.sign(sns.notification(s3_event("uploads", f"in/{n}.txt", 3), SigningCertURL=url))
            for n in range(12)
        ]
        answers = await asyncio.gather(*(post(client, m) for m in messages))
    assert [a.status_code for a in answers] == [200] * 12
    assert server.requests.count(path) == 1


async def test_a_url_without_a_certificate_is_not_fetched_again(sns: SnsSender, server: FileServer) -> None:
    """Anyone can post a message naming a certificate URL on the SNS host: each one was fetched
    again, so every forged post cost a request out (and a connection held up to its timeout)."""
    path = "/SimpleNotificationService-absent.pem"
    message = sns.sign(
        sns.notification(s3_event("uploads", "in/a.txt", 3), SigningCertURL=f"{server.url}{path}")
    )
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app_for(sns)), base_url="http://t"
    ) as client:
        answers = [await post(client, message) for _ in range(3)]
    assert {a.status_code for a in answers} == {401}
    assert {a.json()["message"] for a in answers} == {
        "webhook refused: the SNS certificate could not be fetched (HTTP 404)"
    }
    assert server.requests.count(path) == 1


@contextlib.asynccontextmanager
async def held_certificate_host() -> AsyncIterator[
    tuple[str, dict[str, int], asyncio.Condition, asyncio.Event]
]:
    """An HTTP server that holds every request until released, then answers 404; counts them."""
    release, seen, changed = asyncio.Event(), {"requests": 0, "open": 0, "most_open": 0}, asyncio.Condition()

    async def answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")
        async with changed:
            seen["requests"] += 1
            seen["open"] += 1
            seen["most_open"] = max(seen["most_open"], seen["open"])
            changed.notify_all()
        await release.wait()
        seen["open"] -= 1
        writer.write(b"HTTP/1.1 404 Not Found\r\ncontent-length: 0\r\nconnection: close\r\n\r\n")
        await writer.drain()
        writer.close()

    server = await asyncio.start_server(answer, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        yield f"http://127.0.0.1:{port}", seen, changed, release
    finally:
        release.set()
        server.close()
        await server.wait_closed()


async def test_certificate_fetches_are_bounded() -> None:
    """Forged posts naming ever new certificate URLs: a few fetches run at once, a bounded number
    of URLs wait for theirs, and past that a message is answered 503 (SNS delivers it again)."""
    async with held_certificate_host() as (origin, seen, changed, release):
        verifier = SnsVerifier(["arn:aws:sns:*:1:t"], url_pattern=r"http://127\.0\.0\.1:\d+")
        signature = base64.b64encode(b"x" * 256).decode()

        def message(n: int) -> dict[str, Any]:
            return {
                "Type": "Notification", "SignatureVersion": "1", "TopicArn": "arn:aws:sns:us-east-1:1:t",
                "Signature": signature, "SigningCertURL": f"{origin}/SimpleNotificationService-{n}.pem",
            }  # fmt: skip

        total = sns_module._PENDING_AT_MOST + 5
        checks = [asyncio.ensure_future(verifier.verify_message(message(n))) for n in range(total)]
        done, _ = await asyncio.wait(checks, timeout=10, return_when=asyncio.FIRST_COMPLETED)
        async with changed:
            await asyncio.wait_for(
                changed.wait_for(lambda: seen["requests"] >= sns_module._FETCHES_AT_ONCE), 10
            )
        assert all(isinstance(c.exception(), WebhookUnavailable) for c in done)
        unavailable = [c for c in checks if c.done()]
        assert len(unavailable) == total - sns_module._PENDING_AT_MOST
        assert seen["most_open"] == sns_module._FETCHES_AT_ONCE
        release.set()
        results = await asyncio.gather(*checks, return_exceptions=True)
    refused = [r for r in results if isinstance(r, WebhookRefused)]
    assert len(refused) == sns_module._PENDING_AT_MOST
    assert seen["requests"] == sns_module._PENDING_AT_MOST
    assert seen["most_open"] == sns_module._FETCHES_AT_ONCE


async def test_an_expired_certificate_is_refused(sns: SnsSender, server: FileServer) -> None:
    server.files["/SimpleNotificationService-expired.pem"] = (
        self_signed_pem(sns.key, days=-1),
        "application/x-pem-file",
    )
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app_for(sns)), base_url="http://t"
    ) as client:
        message = sns.notification(
            s3_event("uploads", "in/a.txt", 3),
            SigningCertURL=f"{server.url}/SimpleNotificationService-expired.pem",
        )
        response = await post(client, sns.sign(message))
    assert response.status_code == 401 and "expired" in response.json()["message"]


async def test_a_certificate_out_of_reach_asks_for_redelivery_not_refusal(
    client: httpx.AsyncClient, app: Any, sns: SnsSender, server: FileServer
) -> None:
    """A certificate fetch that failed for a moment answered 401, and SNS takes any 4xx as
    delivered (it retries an HTTP endpoint only on a 5xx or no answer): the S3 event, and its scan,
    were lost. A 503 with Retry-After asks SNS to deliver it again; a certificate that is not
    there (404) is still refused."""
    closed = f"http://127.0.0.1:{free_port()}/SimpleNotificationService-test.pem"
    message = sns.sign(sns.notification(s3_event("uploads", "in/a.txt", 3), SigningCertURL=closed))
    response = await post(client, message)
    assert response.status_code == 503, response.text
    assert response.headers["Retry-After"] and "could not be fetched" in response.json()["message"]
    assert refused(app) == 0
    missing = f"{server.url}/SimpleNotificationService-missing.pem"
    message = sns.sign(sns.notification(s3_event("uploads", "in/a.txt", 3), SigningCertURL=missing))
    assert (await post(client, message)).status_code == 401 and refused(app) == 1


async def test_topics_outside_the_allow_list_are_refused(sns: SnsSender) -> None:
    other_account = sns.notification(
        s3_event("uploads", "in/a.txt", 3), TopicArn="arn:aws:sns:us-east-1:999:dsx-x"
    )
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app_for(sns)), base_url="http://t"
    ) as client:
        response = await post(client, sns.sign(other_account))
        assert (
            response.status_code == 401
            and "not in DSXCONNECTOR_AWS_SNS_TOPIC_ARNS" in response.json()["message"]
        )
    unset = app_for(sns, aws_sns_topic_arns="")
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=unset), base_url="http://t") as client:
        response = await post(client, sns.sign(sns.notification(s3_event("uploads", "in/a.txt", 3))))
        assert (
            response.status_code == 401
            and "set DSXCONNECTOR_AWS_SNS_TOPIC_ARNS" in response.json()["message"]
        )


async def test_a_signed_subscription_is_confirmed_and_an_unsigned_one_never_fetched(
    client: httpx.AsyncClient, sns: SnsSender, server: FileServer
) -> None:
    unsigned = await post(client, sns.confirmation())
    assert unsigned.status_code == 401 and "/confirm" not in [p.split("?")[0] for p in server.requests]
    confirmed = await post(client, sns.sign(sns.confirmation(), "2"))
    assert confirmed.status_code == 200, confirmed.text
    assert confirmed.json()["message"] == "SNS subscription confirmed"
    assert any(p.startswith("/confirm?Action=ConfirmSubscription") for p in server.requests)


@pytest.mark.parametrize(
    ("url", "allowed"),
    [
        ("https://sns.eu-west-1.amazonaws.com/SimpleNotificationService-1.pem", True),
        ("https://sns.eu-west-1.amazonaws.com:443/x.pem", True),
        ("https://sns.cn-north-1.amazonaws.com.cn/x.pem", True),
        ("http://sns.eu-west-1.amazonaws.com/x.pem", False),  # not https
        ("https://sns.eu-west-1.amazonaws.com:8443/x.pem", False),
        ("https://sns.eu-west-1.amazonaws.com.evil.example/x.pem", False),
        ("https://user@sns.eu-west-1.amazonaws.com/x.pem", False),
        ("https://s3.eu-west-1.amazonaws.com/x.pem", False),
        ("https://sns.us-gov-west-1.amazonaws.com/x.pem", True),
        ("https://sns.us-isob-east-1.amazonaws.com/x.pem", True),
        # the virtual-hosted names of an S3 bucket called "sns" (AWS's wildcard certificates cover them)
        ("https://sns.s3.amazonaws.com/x.pem", False),
        ("https://sns.s3-accelerate.amazonaws.com/x.pem", False),
        ("https://sns.s3-us-west-2.amazonaws.com/x.pem", False),
        ("https://sns.s3-external-1.amazonaws.com/x.pem", False),
        ("not a url", False),
    ],
)
def test_certificate_urls_follow_the_sns_host_rule(url: str, allowed: bool) -> None:
    assert url_allowed(url, DEFAULT_URL_PATTERN) is allowed


@pytest.mark.parametrize(
    "path", ["/x.pem", "/SimpleNotificationService-test.pem?v=1", "/a/SimpleNotificationService-test.pem"]
)
async def test_a_certificate_url_off_the_sns_path_is_never_fetched(
    client: httpx.AsyncClient, sns: SnsSender, server: FileServer, path: str
) -> None:
    before = len(server.requests)
    message = sns.sign(sns.notification(s3_event("uploads", "in/a.txt", 3), SigningCertURL=server.url + path))
    response = await post(client, message)
    assert response.status_code == 401 and "SigningCertURL refused" in response.json()["message"]
    assert len(server.requests) == before


@pytest.mark.parametrize(("seconds_ago", "accepted"), [(3000, True), (3600 + 400, False), (-400, False)])
async def test_a_notification_outside_the_sns_retry_window_is_a_replay(
    client: httpx.AsyncClient, sns: SnsSender, seconds_ago: float, accepted: bool
) -> None:
    message = sns.sign(
        sns.notification(s3_event("uploads", "in/a.txt", 3), Timestamp=sns_timestamp(seconds_ago))
    )
    response = await post(client, message)
    assert (response.status_code == 200) is accepted, response.text
    if not accepted:
        assert response.status_code == 401
        assert "replay" in response.json()["message"] or "future" in response.json()["message"]


def test_a_subscribe_url_must_confirm_a_subscription() -> None:
    assert trusted_subscribe_url("https://sns.us-east-1.amazonaws.com/?Action=ConfirmSubscription&Token=x")
    assert not trusted_subscribe_url("https://sns.us-east-1.amazonaws.com/?Action=Publish&Token=x")


def test_a_bad_url_pattern_stops_the_connector() -> None:
    with pytest.raises(ValueError, match="not a regular expression"):
        AwsS3Settings(asset="uploads", aws_sns_url_pattern="(")
