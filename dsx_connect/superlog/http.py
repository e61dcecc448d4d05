"""What the HTTP destinations (Splunk HEC, Sentinel) share: one POST and the mapping of its answer."""

from __future__ import annotations

import ssl
from collections.abc import Callable, Collection, Mapping

import httpx

from shared.errors import PermanentError, RetryableError

# Refused as such: the same body would be refused again (malformed, too large, schema mismatch).
# A 400 is one only when the destination says the events are the cause (``events_at_fault``): services
# answer 400 for a wrong index, stream or channel as well, which concerns every event alike.
PERMANENT_STATUS = frozenset({400, 413, 422})


class Throttled(RetryableError):
    """The receiver asked us to wait (``Retry-After``) before the next call."""

    def __init__(self, message: str, *, status_code: int | None = None, retry_after_s: float = 0.0) -> None:
        super().__init__(message, status_code=status_code)
        self.retry_after_s = retry_after_s


def tls_verify(ca_bundle: str | None, verify_tls: bool) -> ssl.SSLContext | bool:
    """httpx's ``verify``: a context trusting ``ca_bundle`` when given, else on/off."""
    return ssl.create_default_context(cafile=ca_bundle) if ca_bundle else verify_tls


def post(client: httpx.Client, url: str, body: bytes, headers: Mapping[str, str], who: str) -> httpx.Response:
    """POST ``body``; a network error or timeout is a RetryableError naming ``who`` (never the URL
    itself, whose path or query may carry a token)."""
    try:
        return client.post(url, content=body, headers=dict(headers))
    except httpx.HTTPError as exc:
        detail = str(exc).replace(url, "<url>")
        raise RetryableError(f"{who}: {type(exc).__name__}: {detail}") from exc


def classify(
    response: httpx.Response,
    who: str,
    ok: Collection[int],
    events_at_fault: Callable[[httpx.Response], bool] | None = None,
    hint: str = "",
) -> None:
    """Return if ``response`` is a success; raise PermanentError or RetryableError (Throttled) otherwise.

    ``events_at_fault`` tells whether a 400 refuses the events sent (PermanentError: they are narrowed
    down and set aside) or concerns the destination (RetryableError: kept and retried until it is
    fixed); without it every 400 refuses the events. ``hint`` is added to the message (what to check).
    """
    status = response.status_code
    if status in ok:
        return
    message = f"{who}: HTTP {status}: {response.text[:300]}{hint}"
    if status in PERMANENT_STATUS and (status != 400 or events_at_fault is None or events_at_fault(response)):
        raise PermanentError(message, status_code=status)
    retry_after = _retry_after(response.headers.get("Retry-After"))
    if status in (429, 503) and retry_after:
        raise Throttled(message, status_code=status, retry_after_s=retry_after)
    raise RetryableError(message, status_code=status)


def _retry_after(value: str | None) -> float:
    try:
        return min(max(float(value), 0.0), 300.0) if value else 0.0
    except ValueError:
        return 0.0  # an HTTP date: fall back to our own backoff


def json_body(response: httpx.Response) -> dict[str, object]:
    """The response's JSON object, or an empty one (no JSON, or not an object)."""
    try:
        body = response.json()
    except ValueError:
        return {}
    return body if isinstance(body, dict) else {}
