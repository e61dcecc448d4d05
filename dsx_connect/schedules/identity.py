"""The scanner's identity, read from its ``GET /version``.

``dsxa_lite`` answers ``identity`` (its version, engines and rule-set digest in one string; the same
value it puts in every scan answer as ``engine_version``) and ``engine_version`` (the engines alone).
The first present of those two is the identity; a scanner without that route, or an answer without
them, has an unknown identity, and nothing is started for it.
"""

from __future__ import annotations

import hashlib
import logging

import httpx

from dsx_connect.cache.identity import version_url_for
from dsx_connect.settings import ScannerSettings
from shared.tls import client_ssl

log = logging.getLogger(__name__)


def change_digest(previous: str, current: str, sequence: int = 0) -> str:
    """A short name of one identity change (the claim of its rescans); ``sequence`` (the changes
    handled before it) tells a later change between the same two identities (rules re-applied after
    a rollback) from this one."""
    return hashlib.sha256(f"{sequence}\n{previous}\n{current}".encode()).hexdigest()[:24]


class ScannerIdentity:
    """Reads the identity of the configured scanner (a callable: ``identity()``)."""

    def __init__(self, scanner: ScannerSettings, timeout_s: float = 5.0, url: str | None = None) -> None:
        """``url``: the version route when it is not at the scan URL's origin (a scanner behind a
        path prefix: ``DSXCONNECT_SCAN_CACHE__VERSION_URL``, which the scan cache reads too)."""
        self.url = url or version_url_for(scanner.scan_binary_url)
        self.known = True  # whether the last read gave an identity (a warning when that ends)
        headers = {}
        if scanner.auth_token is not None:
            token = scanner.auth_token.get_secret_value()
            headers = {"AUTH_TOKEN": token, "AUTH": token}
        self.http = httpx.Client(
            timeout=timeout_s, headers=headers, verify=client_ssl(scanner.verify_tls, scanner.ca_bundle)
        )

    def __call__(self) -> str | None:
        identity = self._read()
        if identity is None and self.known:
            log.warning(
                "scanner identity unknown at %s: no rescan on a scanner change until it answers one "
                "(a scanner behind a path prefix: set DSXCONNECT_SCAN_CACHE__VERSION_URL)",
                self.url,
            )
        self.known = identity is not None
        return identity

    def _read(self) -> str | None:
        try:
            answer = self.http.get(self.url)
            if answer.status_code != 200:
                log.debug("scanner %s answered %s: identity unknown", self.url, answer.status_code)
                return None
            body = answer.json()
        except (httpx.HTTPError, ValueError) as exc:
            log.debug("scanner identity unknown: %s", exc)
            return None
        if not isinstance(body, dict):
            return None
        for name in ("identity", "engine_version"):
            value = body.get(name)
            if isinstance(value, str) and value:
                return value
        return None

    def close(self) -> None:
        self.http.close()
