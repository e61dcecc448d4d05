"""DSX-HMAC as SPEC §8 writes it: the wire format, the canonical string, and every way a verifier refuses."""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
import time

import httpx
import pytest

from shared import hmac_auth
from shared.hmac_auth import (
    DsxHmacAuth,
    HmacError,
    NonceCache,
    NonceStoreFull,
    Signer,
    check_signature,
    check_skew,
    parse_authorization,
    path_and_query,
    sign,
)

pytestmark = pytest.mark.unit

SECRET = "s3cret-with-ünicode"
HEADER = re.compile(
    r"^DSX-HMAC key_id=(?P<kid>[^,]+), ts=(?P<ts>\d+), nonce=(?P<nonce>[^,]+), sig=(?P<sig>\S+)$"
)


def reference_sig(secret: str, method: str, path_q: str, ts: int, nonce: str, body: bytes) -> str:
    """SPEC §8 spelled out: base64(HMAC-SHA256(utf-8 secret, METHOD|path?query|ts|nonce| + body))."""
    message = f"{method}|{path_q}|{ts}|{nonce}|".encode() + body
    return base64.b64encode(hmac.new(secret.encode("utf-8"), message, hashlib.sha256).digest()).decode()


def test_the_header_has_the_spec_wire_format_and_signature() -> None:
    body = b'{"location": "a.txt"}'
    value = Signer("kid-1", SECRET).authorization("POST", "/fs/read_file?x=1", body, ts=1_700_000_000)
    found = HEADER.match(value)
    assert found, value
    assert found["kid"] == "kid-1" and found["ts"] == "1700000000" and len(found["nonce"]) == 16
    expected = reference_sig(SECRET, "POST", "/fs/read_file?x=1", 1_700_000_000, found["nonce"], body)
    assert found["sig"] == expected
    assert sign(SECRET, "POST", "/fs/read_file?x=1", 1_700_000_000, found["nonce"], body) == expected


def test_each_request_gets_a_new_nonce() -> None:
    signer = Signer("k", SECRET)
    nonces = {HEADER.match(signer.authorization("GET", "/x"))["nonce"] for _ in range(200)}  # type: ignore[index]
    assert len(nonces) == 200


def test_path_and_query_appends_the_query_only_when_there_is_one() -> None:
    assert path_and_query("/a/b") == "/a/b"
    assert path_and_query("/a%20b", "x=1&y=%2F") == "/a%20b?x=1&y=%2F"


def test_a_correct_signature_verifies() -> None:
    ts = int(time.time())
    params = parse_authorization(Signer("k", SECRET).authorization("PUT", "/p?q=1", b"body", ts=ts))
    check_skew(params)
    check_signature(params, SECRET, "PUT", "/p?q=1", b"body")


@pytest.mark.parametrize(
    ("method", "path_q", "body", "secret"),
    [
        ("PUT", "/p?q=1", b"bodY", SECRET),  # tampered body
        ("PUT", "/p?q=2", b"body", SECRET),  # tampered query
        ("PUT", "/other?q=1", b"body", SECRET),  # another path
        ("POST", "/p?q=1", b"body", SECRET),  # another method
        ("PUT", "/p?q=1", b"body", "another secret"),  # another key
    ],
    ids=["body", "query", "path", "method", "secret"],
)
def test_any_change_breaks_the_signature(method: str, path_q: str, body: bytes, secret: str) -> None:
    params = parse_authorization(Signer("k", SECRET).authorization("PUT", "/p?q=1", b"body"))
    with pytest.raises(HmacError) as refused:
        check_signature(params, secret, method, path_q, body)
    assert refused.value.reason == "bad_signature"


@pytest.mark.parametrize(
    ("value", "reason"),
    [
        (None, "missing"),
        ("", "missing"),
        ("Bearer abc", "missing"),
        ("DSX-HMAC key_id=k, ts=1, nonce=n", "malformed"),
        ("DSX-HMAC key_id=k, ts=soon, nonce=n, sig=AAAA", "malformed"),
        ("DSX-HMAC key_id=k, ts=1, nonce=n, sig=AAAA, extra=1", "malformed"),
        ("DSX-HMAC key_id=k, key_id=j, ts=1, nonce=n, sig=AAAA", "malformed"),
        ("DSX-HMAC key_id=k k, ts=1, nonce=n, sig=AAAA", "malformed"),
        ("DSX-HMAC key_id=k, ts=99999999999999, nonce=n, sig=AAAA", "malformed"),
    ],
)
def test_malformed_headers_are_refused(value: str | None, reason: str) -> None:
    with pytest.raises(HmacError) as refused:
        parse_authorization(value)
    assert refused.value.reason == reason


def test_a_signature_that_is_not_base64_is_refused() -> None:
    params = parse_authorization("DSX-HMAC key_id=k, ts=1, nonce=n, sig=abc")
    with pytest.raises(HmacError, match="base64"):
        check_signature(params, SECRET, "GET", "/", b"")


def test_a_1x_header_with_padding_in_nonce_and_sig_parses() -> None:
    params = parse_authorization("DSX-HMAC key_id=kid, ts=17, nonce=AAECAwQFBgcICQoL, sig=q83vEjRWeJA=")
    assert (params.key_id, params.ts, params.nonce, params.sig) == (
        "kid",
        17,
        "AAECAwQFBgcICQoL",
        "q83vEjRWeJA=",
    )


@pytest.mark.parametrize("offset", [-61, 61, -3600])
def test_a_timestamp_past_the_skew_is_stale(offset: int) -> None:
    now = 1_700_000_000
    params = parse_authorization(Signer("k", SECRET).authorization("GET", "/", ts=now + offset))
    with pytest.raises(HmacError) as refused:
        check_skew(params, now=now)
    assert refused.value.reason == "stale"


def test_a_timestamp_within_the_skew_passes() -> None:
    now = 1_700_000_000
    for offset in (-60, 0, 60):
        check_skew(
            parse_authorization(Signer("k", SECRET).authorization("GET", "/", ts=now + offset)), now=now
        )


def test_the_nonce_cache_refuses_a_replay_within_its_window_only() -> None:
    cache = NonceCache(ttl_s=120)
    assert cache.add("k", "n1", now=0) and not cache.add("k", "n1", now=119)
    assert cache.add("other-key", "n1", now=1)  # nonces are per key
    assert cache.add("k", "n1", now=121)  # expired from the window


def test_the_nonce_cache_is_bounded_by_refusing_never_by_forgetting() -> None:
    cache = NonceCache(ttl_s=120, max_entries=100)
    for n in range(100):
        assert cache.add("k", f"n{n}", now=0)
    with pytest.raises(NonceStoreFull):
        cache.add("k", "one-more", now=1)
    assert len(cache) == 100
    assert not cache.add("k", "n0", now=119)  # the oldest is still remembered: its replay is refused
    assert cache.add("k", "fresh", now=120)  # once the window has passed, room again
    assert cache.add("k", "n0", now=121)


def test_the_httpx_auth_signs_path_query_and_body_as_sent() -> None:
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(204)

    auth = DsxHmacAuth(Signer("k", SECRET))
    with httpx.Client(transport=httpx.MockTransport(handler), auth=auth) as client:
        client.post("http://core/a b/c", params={"x": "1/2"}, json={"k": "v"})
    request = seen[0]
    params = parse_authorization(request.headers["authorization"])
    path_q = request.url.raw_path.decode()
    assert path_q == "/a%20b/c?x=1%2F2"
    check_signature(params, SECRET, "POST", path_q, request.content)


def test_a_signer_never_shows_its_secret() -> None:
    assert SECRET not in repr(Signer("k", SECRET))
    assert hmac_auth.SCHEME == "DSX-HMAC"
