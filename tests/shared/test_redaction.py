"""No secret reaches a log line: registered values, and secret-shaped text whoever logs it."""

from __future__ import annotations

import io
import json
import logging

import pytest

from shared.logging import JsonFormatter
from shared.redaction import RedactingFilter, redact, register_secret

pytestmark = pytest.mark.unit


def logged(*args: object, **extra: object) -> str:
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonFormatter("test"))
    handler.addFilter(RedactingFilter())
    logger = logging.getLogger("tests.redaction")
    logger.addHandler(handler)
    logger.propagate = False
    try:
        logger.warning(*args, extra=extra)  # type: ignore[arg-type]
    finally:
        logger.removeHandler(handler)
    return stream.getvalue()


def test_a_registered_secret_is_masked_in_messages_arguments_and_extras() -> None:
    register_secret("enroll-token-4242-abcdef")
    line = logged("token is %s", "enroll-token-4242-abcdef", detail="again enroll-token-4242-abcdef")
    assert "enroll-token-4242-abcdef" not in line
    assert json.loads(line)["detail"] == "again ***"


@pytest.mark.parametrize(
    "text",
    [
        "Authorization: DSX-HMAC key_id=dsxk-1, ts=1700000000, nonce=AAECAwQFBgcICQoL, sig=q83vEjRWeJA+/x=",
        "headers={'authorization': 'Bearer opkey-very-secret'}",
        '{"hmac_key_id": "dsxk-1", "hmac_secret": "derived-secret-value"}',
        "X-API-Key: opkey-very-secret",
        "GET /x?api_key=opkey-very-secret&y=1",
        "client_secret=abc123def",
        # signed URLs and connection strings quoted by a storage SDK's exception
        "Max retries exceeded with url: /acct/c/b?sv=2021-08-06&sp=r&sig=opkey-very-secret (Caused by x)",
        "GET https://s3.example/b/k?X-Amz-Date=1&X-Amz-Signature=opkey-very-secret",
        "https://storage.googleapis.com/b/o?X-Goog-Signature=abc123def&X-Goog-Expires=60",
        "copy source https%3A%2F%2Fa%2Fc%2Fb%3Fsv%3D1%26sig%3Dopkey-very-secret%26se%3D2",
        "DefaultEndpointsProtocol=https;AccountName=acct;AccountKey=derived-secret-value;EndpointSuffix=x",
    ],
)
def test_secret_shaped_text_is_masked_even_unregistered(text: str) -> None:
    cleaned = redact(text)
    for secret in (
        "q83vEjRWeJA",
        "opkey-very-secret",
        "derived-secret-value",
        "abc123def",
        "AAECAwQFBgcICQoL",
    ):
        assert secret not in cleaned, cleaned
    assert "***" in cleaned


def test_a_traceback_is_masked_too() -> None:
    register_secret("server-key-in-a-traceback")
    try:
        raise RuntimeError("failed with server-key-in-a-traceback")
    except RuntimeError:
        stream = io.StringIO()
        handler = logging.StreamHandler(stream)
        handler.setFormatter(JsonFormatter("test"))
        logger = logging.getLogger("tests.redaction.exc")
        logger.addHandler(handler)
        logger.propagate = False
        logger.exception("boom")
        logger.removeHandler(handler)
    assert "server-key-in-a-traceback" not in stream.getvalue()


def test_ordinary_text_is_left_alone() -> None:
    text = "scanned 12 files: 10 Benign, 2 Malicious; key_id=dsxk-1 registered"
    assert redact(text) == text
