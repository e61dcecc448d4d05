"""Microsoft Sentinel destination, through the Azure Monitor Logs Ingestion API.

``POST {dce_url}/dataCollectionRules/{dcr_immutable_id}/streams/{stream_name}?api-version=2023-01-01``
with a JSON array of records (at most 1 MB per call) and ``Authorization: Bearer <token>``; the token
comes from msal's client-credentials flow (``{authority_host}/{tenant_id}``, scope
``https://monitor.azure.com//.default``) and is cached by msal until it nears expiry.

Each record is the SPEC §7 event plus ``TimeGenerated`` (its timestamp), so a data collection rule
whose stream declares these columns (``TimeGenerated`` datetime, ``connector``, ``verdict_details``,
``file_info``, ``action``, ``scanner`` dynamic, the rest string/int) can use the ``source`` transform.

Answers: 204 delivered; 413/422 refused as such; 401 drops the cached token and retries; 400 retries
too: the body is always a JSON array of objects, and the service accepts rows that do not match the
stream's columns (they land in ``DCRLogErrors``), so a 400 names a configuration problem (DCR, stream,
api-version) that concerns every event, never one event to set aside; 403 (role assignments take
minutes to apply), 429 (``Retry-After``), 5xx and network errors retry.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any
from urllib.parse import quote

import httpx

from dsx_connect.superlog.config import SentinelSettings
from dsx_connect.superlog.http import classify, post, tls_verify
from dsx_connect.superlog.sink import Record, Sink
from shared.errors import RetryableError

API_VERSION = "2023-01-01"


class SentinelSink(Sink):
    name = "sentinel"

    def __init__(self, settings: SentinelSettings) -> None:
        assert settings.dce_url and settings.dcr_immutable_id and settings.client_secret
        self.settings = settings
        self.url = (
            f"{settings.dce_url.rstrip('/')}/dataCollectionRules/{quote(settings.dcr_immutable_id, safe='')}"
            f"/streams/{quote(settings.stream_name, safe='')}?api-version={API_VERSION}"
        )
        self.max_bytes = settings.max_batch_bytes - 2  # the array's brackets
        self.max_record_bytes = self.max_bytes
        self.overhead_bytes = 1  # the comma between records
        self.http = httpx.Client(
            timeout=settings.timeout_s, verify=tls_verify(settings.ca_bundle, settings.verify_tls)
        )
        self._msal: Any = None

    def encode(self, event: dict[str, Any]) -> Record:
        record = self.record(None, 0, event)
        row = {
            "TimeGenerated": record.time.isoformat(timespec="milliseconds").replace("+00:00", "Z"),
            **event,
        }
        body = json.dumps(row, separators=(",", ":"), ensure_ascii=False).encode()
        return self.record(body, len(body), event)

    def send(self, records: Sequence[Record]) -> int:
        body = b"[" + b",".join(r.payload for r in records) + b"]"
        headers = {"Authorization": f"Bearer {self.token()}", "Content-Type": "application/json"}
        response = post(self.http, self.url, body, headers, "sentinel")
        if response.status_code == 401:
            self._msal = None  # a fresh client, an empty cache: the next call fetches a new token
        classify(
            response,
            "sentinel",
            ok=(200, 204),
            events_at_fault=lambda _: False,
            hint=" (check DSXCONNECT_SUPERLOG__SENTINEL__DCR_IMMUTABLE_ID and __STREAM_NAME)"
            if response.status_code == 400
            else "",
        )
        return 0

    def token(self) -> str:
        """A bearer token for the Logs Ingestion API (msal's cache answers until it nears expiry)."""
        s = self.settings
        try:
            if self._msal is None:
                import msal

                assert s.client_secret is not None
                self._msal = msal.ConfidentialClientApplication(
                    s.client_id,
                    client_credential=s.client_secret.get_secret_value(),
                    authority=f"{s.authority_host.rstrip('/')}/{s.tenant_id}",
                    validate_authority=s.authority_host == "https://login.microsoftonline.com",
                    instance_discovery=s.authority_host == "https://login.microsoftonline.com",
                    http_client=_MsalHttp(self.http),
                )
            result = self._msal.acquire_token_for_client(scopes=[s.scope])
        except Exception as exc:  # msal raises requests' and its own errors while reaching the authority
            self._msal = None
            raise RetryableError(
                f"sentinel: token from {s.authority_host}: {type(exc).__name__}: {exc}"
            ) from exc
        token = result.get("access_token") if isinstance(result, dict) else None
        if not token:
            detail = (
                result.get("error_description") or result.get("error") if isinstance(result, dict) else result
            )
            raise RetryableError(f"sentinel: no token from {s.authority_host}: {str(detail)[:300]}")
        return str(token)

    def close(self) -> None:
        self.http.close()


class _MsalHttp:
    """msal's HTTP client interface over our httpx client: the same TLS settings (``ca_bundle``) for the
    token authority as for the ingestion endpoint, whatever ``REQUESTS_CA_BUNDLE`` says."""

    def __init__(self, client: httpx.Client) -> None:
        self.client = client

    def post(
        self, url: str, params: Any = None, data: Any = None, headers: Any = None, **_: Any
    ) -> httpx.Response:
        if isinstance(data, str | bytes):
            return self.client.post(url, params=params, content=data, headers=headers)
        return self.client.post(url, params=params, data=data, headers=headers)

    def get(self, url: str, params: Any = None, headers: Any = None, **_: Any) -> httpx.Response:
        return self.client.get(url, params=params, headers=headers)

    def close(self) -> None:
        """The httpx client is the sink's; it closes it."""
