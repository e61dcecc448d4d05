"""Signers for the workers' calls to connectors (``read_file`` on the hot path, ``item_action``).

One :class:`shared.hmac_auth.Signer` per connector, cached a few seconds per process: building the
header then costs one HMAC-SHA256 over the small JSON body (measured: a few microseconds), and a
rotation or revocation reaches the workers within ``ttl_s``.
"""

from __future__ import annotations

import time

from dsx_connect.state.auth_credentials import ConnectorKeys
from shared.hmac_auth import Signer


class SignerCache:
    """``get(uuid)``: the signer for calls to that connector, or None when it holds no key."""

    def __init__(self, credentials: ConnectorKeys, ttl_s: float = 5.0) -> None:
        self.credentials = credentials
        self.ttl_s = ttl_s
        self._cache: dict[str, tuple[float, Signer | None]] = {}

    def get(self, uuid: str) -> Signer | None:
        now = time.monotonic()
        cached = self._cache.get(uuid)
        if cached is not None and now - cached[0] < self.ttl_s:
            return cached[1]
        signer = self.credentials.signer(uuid)
        self._cache[uuid] = (now, signer)
        return signer

    def forget(self, uuid: str) -> None:
        """The connector refused our signature (401): read its pair again on the next call."""
        self._cache.pop(uuid, None)
