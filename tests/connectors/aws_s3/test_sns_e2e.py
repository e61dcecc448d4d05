"""SNS webhooks on the real stack: a connector process on moto with verification on, the real core
(auth on) and workers. Signed notifications get their objects scanned, in one monitor job; unsigned
and forged ones are refused with 401 and counted, and nothing they name is scanned."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from cryptography.hazmat.primitives.asymmetric import rsa

from tests.connectors.aws_s3.conftest import S3Store, s3_event
from tests.dsxa_lite.samples import MARKER
from tests.support.cloud_contract import Core, unique
from tests.support.webhook_senders import (
    SnsSender,
    connector_process,
    file_server,
    scanned_in_one_monitor_job,
    webhook_stats,
)

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(300)]


@pytest.fixture(scope="module")
def sns() -> Iterator[SnsSender]:
    with file_server() as server:
        yield SnsSender(server)


@pytest.fixture(scope="module")
def connector(
    store: S3Store, core: Core, sns: SnsSender, logs_dir: Path
) -> Iterator[tuple[str, dict[str, Any], str]]:
    env = {"DSXCONNECTOR_AWS_SNS_TOPIC_ARNS": sns.topic, "DSXCONNECTOR_AWS_SNS_URL_PATTERN": sns.url_pattern}
    with connector_process(store, core, logs_dir, **env) as running:
        yield running


def post(url: str, message: dict[str, Any]) -> httpx.Response:
    headers = {"content-type": "text/plain; charset=UTF-8", "x-amz-sns-message-type": str(message["Type"])}
    return httpx.post(f"{url}/webhook/event", content=json.dumps(message), headers=headers, timeout=15)


def test_signed_notifications_are_scanned_in_one_monitor_job_and_forged_ones_refused(
    store: S3Store, core: Core, sns: SnsSender, connector: tuple[str, dict[str, Any], str]
) -> None:
    url, registration, bucket = connector
    forged_key, unsigned_key = "incoming/forged.txt", "incoming/unsigned.txt"
    for key in (forged_key, unsigned_key):
        store.put(bucket, key, b"never scanned\n")
    other = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    forged = post(url, sns.sign(sns.notification(s3_event(bucket, forged_key, 14)), key=other))
    unsigned = post(url, sns.notification(s3_event(bucket, unsigned_key, 14)))
    assert (forged.status_code, unsigned.status_code) == (401, 401), (forged.text, unsigned.text)

    keys = [f"incoming/pushed/{unique('new')}.txt" for _ in range(3)]
    for key in keys:
        store.put(bucket, key, b"pushed\n" + MARKER)
        answer = post(url, sns.sign(sns.notification(s3_event(bucket, key, 20)), "2"))
        assert answer.status_code == 200 and answer.json()["submitted"] == 1, answer.text

    scanned_in_one_monitor_job(core, registration["uuid"], keys)
    results = core.results(connector=registration["uuid"])
    assert {r["verdict"] for r in results if r["location"] in keys} == {"Malicious"}
    assert not {r["location"] for r in results} & {forged_key, unsigned_key}
    assert webhook_stats(url) == {"verify": True, "accepted": 3, "refused": 2}
