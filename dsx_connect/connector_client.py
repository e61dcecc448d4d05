"""What the core makes of a connector's answer: one error map for every call the core makes.

:func:`classify` is the only place that turns a connector's HTTP status (and, where the contract
gives one, its ``error`` field) into a kind of outcome. The scan step (``read_file``,
``read_files``), the action step (``item_action``) and the API's calls use it, so a status means
the same everywhere:

=====================================  ==============  ===============================================
status                                 kind            what the core does
=====================================  ==============  ===============================================
2xx                                    ``ok``          reads the answer
404                                    ``gone``        the item is not at its location (typed outcome)
412 with ``error: item_changed``       ``changed``     the item is not the version scanned: untouched
401, 408, 429, 5xx, 1xx/3xx, none      ``unavailable`` retried with backoff (401: a key being rotated)
any other 4xx                          ``refused``     permanent: not retried
=====================================  ==============  ===============================================

Decisions never depend on message text (shared/item_version.py).

:class:`ConnectorClient` makes the core's control-plane calls to one connector (the API, the
scheduler's full scans, the action step); the scan step reads through the hot path's own
transport. Both build their requests from ``connector_requests``.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from enum import Enum
from typing import Any

import httpx

from dsx_connect.connector_requests import Route, route_url
from shared.item_version import ERROR_ITEM_CHANGED, ITEM_CHANGED_STATUS


class AnswerKind(Enum):
    OK = "ok"
    GONE = "gone"
    CHANGED = "changed"
    UNAVAILABLE = "unavailable"
    REFUSED = "refused"


RETRIED_STATUSES = frozenset({401, 408, 429})


def error_field(body: bytes | str | dict[str, object] | None) -> str:
    """The ``error`` field of a JSON answer (``""`` when there is none)."""
    if isinstance(body, dict):
        data: object = body
    else:
        try:
            data = json.loads(body or b"")
        except (ValueError, TypeError, RecursionError):  # nested past the parser's depth: no field
            return ""
    if isinstance(data, dict):
        value = data.get("error")
        if isinstance(value, str):
            return value
        detail = data.get("detail")  # FastAPI's HTTPException(detail={...})
        if isinstance(detail, dict) and isinstance(detail.get("error"), str):
            return str(detail["error"])
    return ""


def classify(status: int, body: bytes | str | dict[str, object] | None = None) -> AnswerKind:
    """The kind of a connector's answer (see the module's table)."""
    if 200 <= status < 300:
        return AnswerKind.OK
    if status == 404:
        return AnswerKind.GONE
    if status == ITEM_CHANGED_STATUS and error_field(body) == ERROR_ITEM_CHANGED:
        return AnswerKind.CHANGED
    if status >= 500 or status in RETRIED_STATUSES or status < 400:
        return AnswerKind.UNAVAILABLE
    return AnswerKind.REFUSED


@dataclass(frozen=True)
class ConnectorClient:
    """One connector's control-plane routes over a pooled ``http`` client, signed by ``auth``
    (DSX-HMAC; None with auth off). Each call returns the connector's answer as it came, to be
    read with :func:`classify`; a failure to reach it raises httpx's error."""

    http: httpx.Client
    connector_url: str
    auth: httpx.Auth | None = None

    def url(self, route: Route) -> str:
        return route_url(self.connector_url, route)

    def _send(self, method: str, route: Route, **kwargs: Any) -> httpx.Response:
        return self.http.request(
            method, self.url(route), auth=self.auth or httpx.USE_CLIENT_DEFAULT, **kwargs
        )

    def estimate(self, timeout_s: float | None = None) -> httpx.Response:
        """``timeout_s``: this call's, instead of the client's."""
        timeout = httpx.USE_CLIENT_DEFAULT if timeout_s is None else timeout_s
        return self._send("GET", Route.ESTIMATE, timeout=timeout)

    def full_scan(
        self, job_id: str, *, limit: int | None = None, batch: bool = False, batch_size: int | None = None
    ) -> httpx.Response:
        """Ask the connector to enumerate its asset into job ``job_id`` (``batch``, ``batch_size``: 1.x)."""
        params: dict[str, Any] = {"job_id": job_id}
        if limit is not None:
            params["limit"] = limit
        if batch:
            params["batch"] = "true"
        if batch_size is not None:
            params["batch_size"] = batch_size
        return self._send("POST", Route.FULL_SCAN, params=params)

    def repo_check(self, preview: int) -> httpx.Response:
        return self._send("GET", Route.REPO_CHECK, params={"preview": preview})

    def healthz(self) -> httpx.Response:
        return self._send("GET", Route.HEALTHZ)

    def readyz(self) -> httpx.Response:
        return self._send("GET", Route.READYZ)

    def get_config(self) -> httpx.Response:
        return self._send("GET", Route.CONFIG)

    def put_config(self, update: dict[str, Any]) -> httpx.Response:
        return self._send("PUT", Route.CONFIG, json=update)
