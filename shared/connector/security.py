"""Where DSX-HMAC (SPEC §8) plugs into a connector, in both directions. No signing yet.

- Outgoing (connector → core): :func:`core_auth` returns the ``httpx.Auth`` the control-plane
  client uses for every call. DSX-HMAC will be an ``httpx.Auth`` subclass with
  ``requires_request_body = True`` that adds ``Authorization: DSX-HMAC key_id=…, ts=…, nonce=…,
  sig=…`` over ``METHOD|path?query|ts|nonce|`` + body, with the key from ``AUTH__HMAC_KEY_ID`` /
  ``AUTH__HMAC_SECRET`` (or the pair returned by enrollment).
- Incoming (core → connector): :func:`verify_core_request` is a FastAPI dependency on every
  route the core calls (``read_file``, ``item_action``, ``full_scan``, ``config``, …). It will
  check the signature, the 60 s skew and nonce replay, and answer 401.

``create_connector_app`` takes both as arguments, so tests and a later issue can swap them.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

import httpx
from fastapi import Request

from shared.connector.settings import ConnectorSettings

#: a FastAPI dependency that raises ``HTTPException(401)`` for a request the core did not sign
RequestVerifier = Callable[[Request], Awaitable[None]]


def core_auth(settings: ConnectorSettings) -> httpx.Auth | None:
    """The auth applied to calls to the core; ``None`` until DSX-HMAC lands."""
    return None


async def verify_core_request(request: Request) -> None:
    """Accept every request; DSX-HMAC verification will go here."""
    return None
