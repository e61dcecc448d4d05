"""The AWS S3 connector in process: S3 event notifications, the SNS envelope and its confirmation handshake."""

from __future__ import annotations

import json
import uuid
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from connectors.aws_s3.connector import AwsS3Connector, trusted_subscribe_url
from connectors.aws_s3.settings import AwsS3Settings
from shared.connector import WebhookReply, create_connector_app
from shared.errors import DsxError
from shared.models import ItemActionType, RequestedAction
from tests.connectors.aws_s3.conftest import S3Store, s3_event, sns_notification
from tests.support.webhook_senders import sns_timestamp

pytestmark = [pytest.mark.unit, pytest.mark.anyio]

PREFIX = "/aws-s3-connector"
SUBSCRIBE = "https://sns.eu-west-1.amazonaws.com/?Action=ConfirmSubscription&TopicArn=arn%3Aaws%3Asns%3Aeu-west-1%3A1%3At&Token=abc"


def connector(sns: httpx.MockTransport | None = None, **settings: Any) -> AwsS3Connector:
    """A connector whose S3 is never reached (webhooks only look at the event)."""
    base = {
        "asset": "uploads/in",
        "webhook": {"verify": False},
        "aws_endpoint_url": "http://127.0.0.1:9",
        "aws_region": "us-east-1",
    }
    return AwsS3Connector(AwsS3Settings(**(base | settings)), http=sns)


def confirmation(url: str = SUBSCRIBE) -> dict[str, Any]:
    return {
        "Type": "SubscriptionConfirmation",
        "MessageId": "165545c9-2a5c-472c-8df2-7ff2be2b3b1b",
        "Token": "abc",
        "TopicArn": "arn:aws:sns:eu-west-1:1:t",
        "Message": "You have chosen to subscribe to the topic arn:aws:sns:eu-west-1:1:t.",
        "SubscribeURL": url,
        "Timestamp": sns_timestamp(),
    }


@pytest.fixture
def fetched() -> list[httpx.Request]:
    return []


@pytest.fixture
async def client(fetched: list[httpx.Request]) -> AsyncIterator[httpx.AsyncClient]:
    def sns(request: httpx.Request) -> httpx.Response:
        fetched.append(request)
        return httpx.Response(200, text="<ConfirmSubscriptionResponse/>")

    app = create_connector_app(connector(httpx.MockTransport(sns)))
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as http:
        yield http


async def post_sns(client: httpx.AsyncClient, envelope: dict[str, Any]) -> httpx.Response:
    """As SNS posts: JSON in a text/plain body."""
    headers = {"content-type": "text/plain; charset=UTF-8", "x-amz-sns-message-type": envelope["Type"]}
    return await client.post(f"{PREFIX}/webhook/event", content=json.dumps(envelope), headers=headers)


@pytest.mark.parametrize(
    ("url", "trusted"),
    [
        (SUBSCRIBE, True),
        ("https://sns.cn-north-1.amazonaws.com.cn/?Action=ConfirmSubscription&Token=x", True),
        ("https://SNS.us-east-1.AMAZONAWS.com/?Action=ConfirmSubscription&Token=x", True),
        ("http://sns.us-east-1.amazonaws.com/?Action=ConfirmSubscription&Token=x", False),  # not https
        ("https://sns.us-east-1.amazonaws.com.evil.example/?Action=ConfirmSubscription", False),
        ("https://evil.example/?Action=ConfirmSubscription&h=sns.us-east-1.amazonaws.com", False),
        ("https://s3.us-east-1.amazonaws.com/?Action=ConfirmSubscription", False),  # not SNS
        ("https://sns.us-east-1.amazonaws.com@evil.example/?Action=ConfirmSubscription", False),
        ("https://user@sns.us-east-1.amazonaws.com/?Action=ConfirmSubscription", False),
        ("https://sns.us-east-1.amazonaws.com:8443/?Action=ConfirmSubscription", False),
        ("https://sns.us-east-1.amazonaws.com/?Action=Publish", False),
        ("https://169.254.169.254/latest/meta-data/", False),
        ("not a url", False),
        ("", False),
    ],
)
def test_only_https_sns_hosts_are_trusted_to_confirm_a_subscription(url: str, trusted: bool) -> None:
    assert trusted_subscribe_url(url) is trusted


async def test_a_subscription_confirmation_is_confirmed_by_fetching_its_url(
    client: httpx.AsyncClient, fetched: list[httpx.Request]
) -> None:
    response = await post_sns(client, confirmation())
    assert response.status_code == 200, response.text
    assert response.json() == {
        "status": "success",
        "message": "SNS subscription confirmed",
        "topic_arn": "arn:aws:sns:eu-west-1:1:t",
    }
    assert [str(r.url) for r in fetched] == [SUBSCRIBE] and fetched[0].method == "GET"


@pytest.mark.parametrize(
    "url",
    ["http://sns.us-east-1.amazonaws.com/?Action=ConfirmSubscription", "https://attacker.example/confirm"],
)
async def test_a_subscription_confirmation_from_elsewhere_is_refused_without_a_request(
    client: httpx.AsyncClient, fetched: list[httpx.Request], url: str
) -> None:
    response = await post_sns(client, confirmation(url))
    assert response.status_code == 400 and response.json()["status"] == "error"
    assert "SubscribeURL refused" in response.json()["message"]
    assert fetched == []


async def test_a_confirmation_sns_refuses_is_an_error_sns_can_retry() -> None:
    app = create_connector_app(connector(httpx.MockTransport(lambda request: httpx.Response(403))))
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as http:
        response = await post_sns(http, confirmation())
    assert response.status_code == 502 and "403" in response.json()["message"]


async def test_auto_confirm_off_leaves_the_subscription_to_the_operator() -> None:
    def never(request: httpx.Request) -> httpx.Response:
        raise AssertionError("no confirmation expected")

    quiet = connector(httpx.MockTransport(never), aws_sns_auto_confirm=False)
    reply = await quiet.webhook(confirmation())
    assert not isinstance(reply, list) and reply.body["status"] == "nothing"


async def test_s3_events_name_the_new_objects_of_the_asset() -> None:
    records = [
        *s3_event("uploads", "in/docs/a report+final.pdf", 12)["Records"],
        *s3_event("uploads", "in/big.iso", 9, name="ObjectCreated:CompleteMultipartUpload")["Records"],
        *s3_event("uploads", "in/gone.pdf", 1, name="ObjectRemoved:Delete")["Records"],
        *s3_event("other-bucket", "in/x.pdf", 1)["Records"],
        *s3_event("uploads", "out/x.pdf", 1)["Records"],
        *s3_event("uploads", "in/x.tmp", 1)["Records"],
        *s3_event("uploads", "in/quarantine/x.pdf", 1)["Records"],
        "not a record",
    ]
    c = connector(filter="-*.tmp", item_action_move_metainfo="in/quarantine")
    items = await c.webhook({"Records": records})
    assert isinstance(items, list)
    assert [(i.location, i.metainfo, i.size) for i in items] == [
        ("in/docs/a report+final.pdf", "uploads/in/docs/a report+final.pdf", 12),
        ("in/big.iso", "uploads/in/big.iso", 9),
    ]


async def test_an_sns_notification_carries_an_s3_event(client: httpx.AsyncClient) -> None:
    c = connector()
    reply = await c.webhook(sns_notification(s3_event("uploads", "in/a.txt", 3)))
    assert isinstance(reply, WebhookReply) and [i.location for i in reply.items] == ["in/a.txt"]
    test_event = await c.webhook(sns_notification({"Service": "Amazon S3", "Event": "s3:TestEvent"}))
    assert isinstance(test_event, WebhookReply) and test_event.items == []
    response = await post_sns(client, sns_notification(s3_event("uploads", "in/a.txt", 3)))
    assert response.status_code == 200 and response.json()["status"] == "success"
    broken = await post_sns(client, {"Type": "Notification", "Message": "not json"})
    assert broken.status_code == 400 and "S3 event" in broken.json()["message"]
    not_json = await client.post(
        f"{PREFIX}/webhook/event", content=b"{oops", headers={"content-type": "text/plain"}
    )
    assert not_json.status_code == 422 and "not JSON" in not_json.json()["message"]


async def test_a_notification_submitted_once_is_dropped_when_delivered_again(
    client: httpx.AsyncClient,
) -> None:
    """SNS delivers at least once, and anyone holding a signed message could post it again: a
    MessageId whose items the core took is not submitted twice; one whose submission failed is."""
    c = connector()
    message = sns_notification(s3_event("uploads", "in/a.txt", 3, version_id="3sL4kqtJlcpXroDTDmJ.rmSp"))
    first = await c.webhook(message)
    assert isinstance(first, WebhookReply) and len(first.items) == 1
    # the object's version, as read answers it: a redelivery that comes while the first delivery's items
    # are still being submitted in the background names the same scan request in the core
    assert first.items[0].version == f"{'0' * 32};vid=3sL4kqtJlcpXroDTDmJ.rmSp"
    again = await c.webhook(message)  # the first was never submitted (no after_submit): still taken
    assert isinstance(again, WebhookReply) and len(again.items) == 1
    assert again.after_submit is not None
    await again.after_submit()
    replay = await c.webhook(message)
    assert isinstance(replay, WebhookReply) and replay.items == []
    assert replay.body == {"status": "nothing", "message": "SNS message already submitted"}


@pytest.mark.parametrize(
    "record",
    [
        {"eventName": "ObjectCreated:Put", "s3": "oops"},
        {"eventName": "ObjectCreated:Put", "s3": {"object": "k", "bucket": {"name": "uploads"}}},
        {"eventName": "ObjectCreated:Put", "s3": {"object": {"key": "in/a"}, "bucket": ["uploads"]}},
    ],
)
async def test_a_malformed_s3_record_is_refused_with_400(
    client: httpx.AsyncClient, record: dict[str, Any]
) -> None:
    response = await post_sns(client, sns_notification({"Records": [record]}))
    assert response.status_code == 400, response.text
    assert "'s3' object and bucket" in response.json()["message"]


ODD_KEYS = ["in/a\\..\\evil.exe", "in/evil\t.exe", "in/./dot.exe", "in//twice.exe"]
ESCAPING = "in/../evil.exe"  # in a path-style URL, a proxy or S3-compatible store resolves ".."


@pytest.mark.integration
async def test_keys_that_look_like_paths_are_read_as_names_or_reported_never_skipped(
    store: S3Store,
) -> None:
    """S3 keys are names: ``in/a\\..\\evil.exe`` or a tab is an object under ``in/``. They were
    refused as paths, so listings and notifications skipped them in silence, and anyone who could
    upload named malware so that it was never scanned. They are now read and acted on as they
    are; a ``..`` segment, which a request path could resolve into another bucket, is still not
    read, but listed and submitted, so its result says it was not scanned and why."""
    bucket = f"odd-{uuid.uuid4().hex[:8]}"
    store.create_bucket(bucket)
    for key in [*ODD_KEYS, ESCAPING]:
        store.put(bucket, key, key.encode())
    connector = store.connector(asset=f"{bucket}/in", item_action_move_metainfo="quarantine")
    try:
        listed = sorted([item.location async for item in connector.enumerate()])
        assert listed == sorted([*ODD_KEYS, ESCAPING])
        notified = await connector.webhook(
            {"Records": [r for key in [*ODD_KEYS, ESCAPING] for r in s3_event(bucket, key, 1)["Records"]]}
        )
        assert isinstance(notified, list) and [i.location for i in notified] == [*ODD_KEYS, ESCAPING]
        for key in ODD_KEYS:
            assert (await connector.read(key)).data == key.encode()
        moved = await connector.act(ODD_KEYS[0], RequestedAction(type=ItemActionType.MOVE))
        assert moved.status == "success", moved
        assert store.get(bucket, f"quarantine/{ODD_KEYS[0]}") == ODD_KEYS[0].encode()
        with pytest.raises(DsxError, match="escapes the asset"):
            await connector.read(ESCAPING)
    finally:
        await connector.aclose()


def test_an_sdk_message_quoting_a_signed_url_loses_its_query() -> None:
    """botocore's connection errors quote the URL: its query (a presigned signature, any token in it)
    never reaches ``/readyz``, an error answer or a log line."""
    from botocore.exceptions import EndpointConnectionError

    from shared.redaction import redact

    url = "http://127.0.0.1:9/uploads/in/a.pdf?X-Amz-Credential=AKIA&X-Amz-Signature=SECRETSIG123"
    err = connector().classify_error(EndpointConnectionError(endpoint_url=url))
    assert err.status_code == 503 and "S3 unreachable" in err.message
    assert "SECRETSIG123" not in err.message and "X-Amz-Credential" not in err.message, err.message
    assert "SECRETSIG123" not in redact(f"Could not connect to the endpoint URL: {url}")


def test_a_quarantine_inside_the_asset_is_warned_about_at_configure(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level("WARNING", logger="shared.connector.buckets"):
        connector(asset="uploads", item_action_move_metainfo="dsxconnect-quarantine")
        connector(asset="uploads", aws_quarantine_bucket="quarantine")
    warned = [r.getMessage() for r in caplog.records if r.name == "shared.connector.buckets"]
    assert len(warned) == 1 and "'uploads/dsxconnect-quarantine' lies inside" in warned[0], warned
