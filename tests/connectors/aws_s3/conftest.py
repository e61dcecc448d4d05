"""Fixtures of the AWS S3 connector tests: moto in server mode, and boto3 pointed at it."""

from __future__ import annotations

import json
import os
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import boto3
import httpx
import pytest
from botocore.exceptions import ClientError

from connectors.aws_s3.connector import AwsS3Connector
from connectors.aws_s3.settings import AwsS3Settings
from tests.support.cloud_contract import core  # noqa: F401  (a fixture)
from tests.support.emulators import Emulator, moto_require_auth, moto_server
from tests.support.webhook_senders import sns_timestamp

REGION = "us-east-1"
KEYS = {"aws_access_key_id": "testing", "aws_secret_access_key": "testing"}


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for key in list(os.environ):
        if key.startswith(("DSXCONNECTOR_", "DSXCONNECT_", "AWS_")):
            monkeypatch.delenv(key)


class S3Store:
    """The contract's view of S3 (``tests.support.cloud_contract.Store``), through boto3 and moto."""

    package, name = "aws_s3", "aws-s3-connector"
    quarantine_setting, page_size_setting = "aws_quarantine_bucket", "aws_list_page_size"

    def __init__(self, endpoint: str) -> None:
        self.endpoint = endpoint
        self.s3 = boto3.client("s3", endpoint_url=endpoint, region_name=REGION, **KEYS)

    def settings(self, **overrides: Any) -> AwsS3Settings:
        return AwsS3Settings(**{"aws_endpoint_url": self.endpoint, "aws_region": REGION, **KEYS, **overrides})

    def connector(self, **settings: Any) -> AwsS3Connector:
        return AwsS3Connector(self.settings(**settings))

    def connector_env(self) -> dict[str, str]:
        # keys and region through the SDK's own chain (environment), the endpoint through ours
        return {
            "DSXCONNECTOR_AWS_ENDPOINT_URL": self.endpoint,
            "AWS_DEFAULT_REGION": REGION,
            "AWS_ACCESS_KEY_ID": "testing",
            "AWS_SECRET_ACCESS_KEY": "testing",
        }

    def create_bucket(self, bucket: str) -> None:
        self.s3.create_bucket(Bucket=bucket)

    def put(self, bucket: str, key: str, data: bytes) -> None:
        self.s3.put_object(Bucket=bucket, Key=key, Body=data)

    def get(self, bucket: str, key: str) -> bytes | None:
        try:
            return self.s3.get_object(Bucket=bucket, Key=key)["Body"].read()
        except ClientError as exc:
            if exc.response["Error"]["Code"] == "NoSuchKey":
                return None
            raise

    def keys(self, bucket: str, prefix: str = "") -> list[str]:
        pages = self.s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix)
        return [obj["Key"] for page in pages for obj in page.get("Contents", ())]

    def tags(self, bucket: str, key: str) -> dict[str, str]:
        tag_set = self.s3.get_object_tagging(Bucket=bucket, Key=key)["TagSet"]
        return {tag["Key"]: tag["Value"] for tag in tag_set}

    def notify(self, connector_url: str, bucket: str, key: str, size: int) -> httpx.Response:
        """An S3 ObjectCreated event in an SNS envelope, posted as SNS does (``text/plain``)."""
        envelope = sns_notification(s3_event(bucket, key, size))
        headers = {"content-type": "text/plain; charset=UTF-8", "x-amz-sns-message-type": "Notification"}
        return httpx.post(f"{connector_url}/webhook/event", content=json.dumps(envelope), headers=headers)

    @contextmanager
    def bad_credentials(self) -> Iterator[dict[str, Any]]:
        moto_require_auth(self.endpoint, on=True)
        try:
            yield {"aws_access_key_id": "AKIAWRONGWRONGWRONG1", "aws_secret_access_key": "wrong"}
        finally:
            moto_require_auth(self.endpoint, on=False)


def s3_event(
    bucket: str, key: str, size: int, name: str = "ObjectCreated:Put", version_id: str | None = None
) -> dict[str, Any]:
    """An S3 event notification as S3 sends it (the key URL-encoded, spaces as ``+``; ``versionId``
    in a versioned bucket)."""
    from urllib.parse import quote_plus

    record = {
        "eventVersion": "2.1",
        "eventSource": "aws:s3",
        "awsRegion": REGION,
        "eventName": name,
        "s3": {
            "s3SchemaVersion": "1.0",
            "bucket": {"name": bucket, "arn": f"arn:aws:s3:::{bucket}"},
            "object": {"key": quote_plus(key, safe="/"), "size": size, "eTag": "0" * 32},
        },
    }
    if version_id is not None:
        record["s3"]["object"]["versionId"] = version_id  # type: ignore[index]
    return {"Records": [record]}


def sns_notification(message: dict[str, Any]) -> dict[str, Any]:
    return {
        "Type": "Notification",
        "MessageId": str(uuid.uuid4()),
        "TopicArn": "arn:aws:sns:us-east-1:123456789012:dsx-uploads",
        "Subject": "Amazon S3 Notification",
        "Message": json.dumps(message),
        "Timestamp": sns_timestamp(),
        "SignatureVersion": "1",
    }


@pytest.fixture(scope="session")
def emulator(logs_dir: Path) -> Iterator[Emulator]:
    with moto_server(logs_dir) as running:
        yield running


@pytest.fixture(scope="session")
def store(emulator: Emulator) -> S3Store:
    return S3Store(emulator.endpoint)
