"""Keep secrets out of log lines (SPEC §8): a ``logging.Filter`` every service's handler carries.

Two layers:

- values: each service registers the secrets it holds (tokens, API keys, HMAC secrets, the scanner
  token) with :func:`register_secret`; any occurrence in a message or an ``extra`` field is masked.
- shapes: whatever the value, ``Authorization``/``X-API-Key``/``X-Enrollment-Token`` headers, a
  ``DSX-HMAC`` signature, ``Bearer`` tokens, ``"hmac_secret": "..."`` and ``password=``/``token=``
  pairs, the signature of a signed URL (Azure SAS ``sig=``, S3 ``X-Amz-Signature=``, GCS
  ``X-Goog-Signature=``) and an Azure connection string's ``AccountKey=`` are masked, so a secret
  nobody registered is still not written.
"""

from __future__ import annotations

import logging
import re
import threading

MASK = "***"
_MIN_LEN = 6  # shorter values would mask ordinary words

_lock = threading.Lock()
_secrets: set[str] = set()
_pattern: re.Pattern[str] | None = None

_SHAPES = [
    (
        re.compile(r"(DSX-HMAC\s+key_id=[^,\s]+,\s*ts=\d+,\s*nonce=)[^,\s]+(,\s*sig=)[^\s,\"']+"),
        rf"\1{MASK}\2{MASK}",
    ),
    (re.compile(r"(?i)\b(bearer)\s+[A-Za-z0-9._~+/=-]+"), rf"\1 {MASK}"),
    (
        re.compile(
            r"(?i)([\"']?(?:authorization|x-api-key|x-enrollment-token|cookie)[\"']?\s*[:=]\s*[\"']?)[^\"'\n,}]+"
        ),
        rf"\1{MASK}",
    ),
    (
        re.compile(
            r"(?i)([\"']?[a-z_]*(?:secret|password|api_key|apikey|token|server_key)[\"']?\s*[:=]\s*[\"']?)"
            r"(?!\*\*\*)[^\"'\s,&}]+"
        ),
        rf"\1{MASK}",
    ),
    # signed URLs (a SAS, a presigned S3 or GCS URL) in a message or an SDK's exception
    (
        re.compile(
            r"(?i)((?:^|[?&;\s\"']|%26|%3f)(?:sig|x-amz-signature|x-goog-signature)(?:=|%3d))"
            r"(?!\*\*\*)(?:(?!%26)[^&;\s\"'<>)])+"
        ),
        rf"\1{MASK}",
    ),
    (re.compile(r"(?i)(\baccountkey=)(?!\*\*\*)[^;\s\"']+"), rf"\1{MASK}"),
]


def register_secret(*values: str | None) -> None:
    """Mask these values wherever they appear in a log line of this process."""
    global _pattern
    fresh = {v for v in values if v and len(v) >= _MIN_LEN} - _secrets
    if not fresh:
        return
    with _lock:
        _secrets.update(fresh)
        ordered = sorted(_secrets, key=len, reverse=True)  # longest first: no partial masks
        _pattern = re.compile("|".join(re.escape(s) for s in ordered))


def redact(text: str) -> str:
    """``text`` with every registered secret and every secret-shaped pair masked."""
    pattern = _pattern
    if pattern is not None:
        text = pattern.sub(MASK, text)
    for shape, replacement in _SHAPES:
        text = shape.sub(replacement, text)
    return text


class RedactingFilter(logging.Filter):
    """Rewrites each record's message (and string ``extra`` fields) with :func:`redact`."""

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except Exception:  # a bad format string: leave it to the formatter to report
            return True
        cleaned = redact(message)
        if cleaned != message or record.args:
            record.msg, record.args = cleaned, None
        for key, value in list(record.__dict__.items()):
            if isinstance(value, str) and key not in ("msg", "name", "levelname", "pathname", "filename"):
                masked = redact(value)
                if masked != value:
                    setattr(record, key, masked)
        return True
