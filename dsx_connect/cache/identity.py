"""The scanner's identity: what a cached verdict is valid for.

dsxa_lite answers ``identity`` in ``GET /version`` (a digest of its compiled rules, block list and
engine versions) and the same text as ``engine_version`` in every scan answer. A scanner that
answers no identity (a real DSXA, as far as its documented routes go) gets none, and with no
identity nothing is served from the cache.

A worker process asks ``/version`` at most once per ``identity_ttl_s`` (one small GET, not one per
batch), and asks again at once when a scan answer carries another identity: a rules reload is
noticed by the first item scanned after it, or within ``identity_ttl_s`` when every item was a hit.
The answer's identity is not taken as is: a late answer of the rules before a reload would bring
the old identity back, and a scanner whose ``/version`` names none must not get one from its answers.
"""

from __future__ import annotations

import logging
import ssl
import time
from collections.abc import Callable
from urllib.parse import urlsplit

import httpx

log = logging.getLogger(__name__)

PROBE_TIMEOUT_S = 2.0


def version_url_for(scan_url: str) -> str:
    """``/version`` at the origin of the scanner's scan URL."""
    parts = urlsplit(scan_url)
    return f"{parts.scheme}://{parts.netloc}/version"


def identity_of(answer: object) -> str | None:
    """The identity in a ``/version`` answer: its ``identity`` field, a non-empty string."""
    if isinstance(answer, dict):
        value = answer.get("identity")
        if isinstance(value, str) and value.strip():
            return value
    return None


Fetch = Callable[[], object]  # the decoded JSON of the version route; raises on failure


class ScannerIdentity:
    """The current scanner identity as this process knows it (None: unknown, the cache is off)."""

    def __init__(self, fetch: Fetch, ttl_s: float, clock: Callable[[], float] = time.monotonic) -> None:
        self._fetch = fetch
        self._ttl_s = ttl_s
        self._clock = clock
        self._value: str | None = None
        self._at: float | None = None

    @classmethod
    def over_http(
        cls, url: str, auth_token: str | None, verify: ssl.SSLContext | bool, ttl_s: float
    ) -> ScannerIdentity:
        headers = {"AUTH_TOKEN": auth_token, "AUTH": auth_token} if auth_token else {}

        def fetch() -> object:
            answer = httpx.get(url, headers=headers, timeout=PROBE_TIMEOUT_S, verify=verify)
            answer.raise_for_status()
            return answer.json()

        return cls(fetch, ttl_s)

    def current(self) -> str | None:
        """The identity, asked of the scanner when the last answer is older than the TTL."""
        now = self._clock()
        if self._at is not None and now - self._at < self._ttl_s:
            return self._value
        try:
            value = identity_of(self._fetch())
        # whatever the probe raises (a bad URL too) means unknown: the cache never fails a scan
        except Exception as exc:
            log.info("scanner identity unknown (%r): the scan cache is off until it answers", exc)
            value = None
        if value != self._value:
            log.info("scanner identity now %r (was %r)", value, self._value)
        self._value, self._at = value, now
        return value

    def observe(self, identity: str | None) -> None:
        """A scan answer's identity: when it differs from the known one, the next :meth:`current`
        asks the scanner again instead of waiting for the TTL. Nothing changes for a scanner
        without an identity: its answers' ``engine_version`` (a build, not its rules) serves nothing."""
        if identity and self._value is not None and identity != self._value and self._at is not None:
            log.info("scanner identity %r in a scan answer (known: %r): asking again", identity, self._value)
            self._at = None
