"""Dependencies of the routes that need the credential store or sign calls to a connector."""

from __future__ import annotations

import os
from functools import lru_cache
from typing import Annotated

import httpx
from fastapi import Depends

from dsx_connect.api.deps import ConnectorHttp, KnownConnector
from dsx_connect.connector_client import ConnectorClient
from dsx_connect.redis_client import get_redis
from dsx_connect.settings import get_settings
from dsx_connect.state.auth_credentials import ConnectorKeys
from shared.hmac_auth import DsxHmacAuth


@lru_cache
def _keys(pid: int) -> ConnectorKeys:
    return ConnectorKeys(get_redis(), get_settings().auth)


def get_connector_keys() -> ConnectorKeys:
    """The process's credential store (its server key is read once)."""
    return _keys(os.getpid())


ConnectorKeysDep = Annotated[ConnectorKeys, Depends(get_connector_keys)]


def signed_calls_auth(credentials: ConnectorKeys, connector_uuid: str) -> httpx.Auth | None:
    """DSX-HMAC for the core's calls to a connector, with the pair it holds (None with auth off)."""
    if not credentials.settings.enabled:
        return None
    return DsxHmacAuth(credentials.signer(connector_uuid))


def connector_auth(connector: KnownConnector, credentials: ConnectorKeysDep) -> httpx.Auth | None:
    """DSX-HMAC for the core's calls to this connector (see :func:`signed_calls_auth`)."""
    return signed_calls_auth(credentials, connector.uuid)


ConnectorAuth = Annotated[httpx.Auth | None, Depends(connector_auth)]


def connector_calls(connector: KnownConnector, http: ConnectorHttp, auth: ConnectorAuth) -> ConnectorClient:
    """The core's control-plane client for this connector: the pooled client, signed with its pair."""
    return ConnectorClient(http, connector.url, auth)


ConnectorCalls = Annotated[ConnectorClient, Depends(connector_calls)]
