"""TLS client settings every service shares: verify against the system store or a CA bundle (SPEC §8)."""

from __future__ import annotations

import ssl
from functools import lru_cache


@lru_cache(maxsize=32)
def client_ssl(verify: bool = True, ca_bundle: str | None = None) -> ssl.SSLContext | bool:
    """What an HTTP client passes as ``verify`` (httpx) or ``ssl_option`` (the workers' hot path).

    ``False`` when verification is off (a lab only); otherwise a context that checks certificates
    and host names against ``ca_bundle`` when given, else the system's trust store. Cached, so each
    process loads a bundle once.
    """
    if not verify:
        return False
    return ssl.create_default_context(cafile=ca_bundle) if ca_bundle else ssl.create_default_context()
