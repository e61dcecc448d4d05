"""shared.connector.objectstore: what the object-store connectors share besides the action flow."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator

import pytest

from shared.connector.objectstore import ObjectInfo, counted, object_content, scrubbed, unguessable
from shared.errors import RetryableError

pytestmark = pytest.mark.unit


@pytest.mark.parametrize(
    ("text", "shown"),
    [
        (
            "HTTPConnectionPool(host='127.0.0.1', port=1): Max retries exceeded with url: "
            "/acct/c/b.bin?sv=2021&sig=SECRETSIG123&se=2030 (Caused by NewConnectionError(...))",
            "Max retries exceeded with url: /acct/c/b.bin?*** (Caused by NewConnectionError(...))",
        ),
        (
            "Failed to parse: http://127.0.0.1:99999/acct/c?restype=container&sig=SECRETSIG123",
            "Failed to parse: http://127.0.0.1:99999/acct/c?***",
        ),
        (
            'Could not connect to the endpoint URL: "https://s3.example/b/k?X-Amz-Signature=SECRETSIG123"',
            'Could not connect to the endpoint URL: "https://s3.example/b/k?***"',
        ),
        ("404 GET https://h?X-Goog-Signature=SECRETSIG123: gone", "404 GET https://h?*** gone"),
    ],
)
def test_an_sdk_message_loses_every_url_query(text: str, shown: str) -> None:
    cleaned = scrubbed(text)
    assert "SECRETSIG123" not in cleaned and shown in cleaned, cleaned


def test_a_message_without_a_url_is_left_as_it_is() -> None:
    text = "BlobNotFound: The specified blob does not exist. Is it there? a/b? yes"
    assert scrubbed(text) == text


async def chunks(*parts: bytes) -> AsyncIterator[bytes]:
    for part in parts:
        yield part


@pytest.mark.anyio
async def test_a_stream_is_counted_against_the_size_the_storage_named() -> None:
    whole = object_content("s3://b/k", 6, "v1", chunks=chunks(b"abc", b"def"))
    assert whole.exact and whole.size == 6 and whole.chunks is not None
    assert [c async for c in whole.chunks] == [b"abc", b"def"]

    short = counted(chunks(b"abc"), 6, "s3://b/k")
    with pytest.raises(RetryableError, match="ended after 3 of 6 bytes"):
        _ = [c async for c in short]
    seen: list[bytes] = []
    with pytest.raises(RetryableError, match="more than the 4 bytes"):
        async for chunk in counted(chunks(b"abc", b"def"), 4, "s3://b/k"):
            seen.append(chunk)
    assert seen == [b"abc"]  # nothing past the size is answered
    with pytest.raises(RetryableError, match="answered 2 of 3 bytes"):
        object_content("s3://b/k", 3, None, data=b"ab")


@pytest.mark.anyio
async def test_closing_a_counted_stream_closes_its_source() -> None:
    closed: list[bool] = []

    async def source() -> AsyncIterator[bytes]:
        try:
            yield b"abc"
            yield b"def"
        finally:
            closed.append(True)

    stream = counted(source(), 6, "x")
    assert await stream.__anext__() == b"abc"
    await stream.aclose()  # type: ignore[attr-defined]
    assert closed == [True]


def test_an_unguessable_name_keeps_folder_stem_and_extension() -> None:
    info = ObjectInfo("v1", 3, "md5:abc")
    first, second = unguessable("q/in/evil.exe", info), unguessable("q/in/evil.exe", info)
    assert first != second
    assert re.fullmatch(r"q/in/evil \([0-9a-f]{12}-[0-9a-f]{32}\)\.exe", first), first
    assert first[: len("q/in/evil (") + 12] == second[: len("q/in/evil (") + 12]  # one object, one digest
    assert re.fullmatch(r"\.bashrc \([0-9a-f]{12}-[0-9a-f]{32}\)", unguessable(".bashrc", info))
