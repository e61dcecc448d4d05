"""What is said to a DSXA scanner and how its answers are read, with no I/O (SPEC §3).

Every client (the workers' hot path, the httpx control-plane client) builds its headers and
reads its answers through these functions, so the wire behaviour is written once.
"""

from __future__ import annotations

import json
import re
from typing import Any
from urllib.parse import quote

from pydantic import ValidationError

from shared.errors import DsxError, PermanentError, RetryableError
from shared.models import DsxaVerdict, Verdict

# Characters that may stay as they are inside a header value: printable ASCII.
_SAFE = "".join(chr(c) for c in range(0x20, 0x7F) if chr(c) != "%")


def _header_safe(value: str) -> str:
    """Percent-encode a value that is not printable ASCII (header values are ASCII; no CR/LF injection)."""
    if value.isascii() and value.isprintable():
        return value
    return quote(value, safe=_SAFE)


def custom_metadata(location: str, metainfo: str, connector_name: str, task_id: str) -> str:
    """The ``X-Custom-Metadata`` value the core sends with each scan."""
    return (
        f"file-loc:{_header_safe(location)},file-meta:{_header_safe(metainfo)},"
        f"dsx-connect:{_header_safe(connector_name)},scan_request_task_id:{_header_safe(task_id)}"
    )


def scan_headers(
    auth_token: str | None = None,
    protected_entity: int | None = None,
    metadata: str | None = None,
    content_type: str = "application/octet-stream",
) -> dict[str, str]:
    """Headers of a ``/scan/binary/v2`` call; the token goes as both ``AUTH_TOKEN`` and ``AUTH``."""
    headers = {"Content-Type": content_type}
    if auth_token:
        headers["AUTH_TOKEN"] = auth_token
        headers["AUTH"] = auth_token
    if protected_entity is not None:
        headers["protected_entity"] = str(protected_entity)
    if metadata:
        headers["X-Custom-Metadata"] = metadata
    return headers


_NESTED_KEYS = {
    "verdictDetails": "verdict_details",
    "fileInfo": "file_info",
    "xCustomMetadata": "X-Custom-Metadata",
    "scanGuid": "scan_guid",
    "scanDurationInMicroseconds": "scan_duration_in_microseconds",
    "protectedEntity": "protected_entity",
}
_FILE_INFO_KEYS = {"fileType": "file_type", "fileSizeInBytes": "file_size_in_bytes", "fileHash": "file_hash"}
_DETAIL_KEYS = {"eventDescription": "event_description", "threatType": "threat_type"}
#: top-level keys that ``_flatten`` renames or unnests (an answer holding one takes the lenient path)
_RENAMED_TOP = frozenset({*_NESTED_KEYS, "details", "x_custom_metadata"})


def _flatten(body: dict[str, Any]) -> dict[str, Any]:
    """Accept the nested ``{"details": {...}}`` form and camelCase keys some DSXA versions send."""
    flat = dict(body)
    details = flat.pop("details", None)
    if isinstance(details, dict):
        for key, value in details.items():
            flat.setdefault(_NESTED_KEYS.get(str(key), str(key)), value)
    for key in list(flat):
        if key in _NESTED_KEYS:
            flat.setdefault(_NESTED_KEYS[key], flat.pop(key))
    if "x_custom_metadata" in flat:
        flat.setdefault("X-Custom-Metadata", flat.pop("x_custom_metadata"))
    info = flat.get("file_info")
    if isinstance(info, dict):
        flat["file_info"] = {_FILE_INFO_KEYS.get(k, k): v for k, v in info.items()}
    det = flat.get("verdict_details")
    if isinstance(det, dict):
        flat["verdict_details"] = {_DETAIL_KEYS.get(k, k): v for k, v in det.items()}
        if flat["verdict_details"].get("reason") is None:
            flat["verdict_details"]["reason"] = ""
    elif det is None:
        flat.pop("verdict_details", None)
    return flat


def parse_verdict(body: bytes | str | dict[str, Any]) -> DsxaVerdict:
    """Read a scanner's 200 answer leniently; ``Scanning`` is recorded as ``Not Scanned``.

    Raises ``RetryableError`` when the scanner says it is still initialising and ``PermanentError``
    when the body is not a verdict at all. Whatever else the answer holds, its verdict is kept: a
    word outside SPEC §3's list is normalized (see ``_normalize``), and a field other than the
    verdict that cannot be read is left at its default (see ``_validate``).
    """
    verdict = _fast_verdict(body)
    if verdict is None:
        verdict = _validate(_flatten(body if isinstance(body, dict) else _loads(body)))
    if verdict.verdict not in _KNOWN:
        _normalize(verdict)
    if verdict.verdict == Verdict.SCANNING.value:
        verdict.verdict = Verdict.NOT_SCANNED.value
    if verdict.verdict == Verdict.NOT_SCANNED.value and _initializing(verdict.verdict_details.reason):
        raise RetryableError(f"scanner not ready: {verdict.verdict_details.reason}", status_code=200)
    return verdict


def _validate(flat: dict[str, Any]) -> DsxaVerdict:
    """Validate a flattened answer; a field that cannot be read (a size that is not a number, details
    that are not an object) is dropped and kept as text in ``verdict_details.unreadable_fields``, so
    an odd detail never costs the verdict. An unreadable ``verdict`` is a ``PermanentError``."""
    try:
        return DsxaVerdict.model_validate(flat)
    except ValidationError as exc:
        errors = exc.errors()
    problems = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in errors)
    if any(e["loc"][:1] == ("verdict",) for e in errors):
        raise PermanentError(f"scanner answered with JSON that is not a verdict: {problems}")
    unreadable: dict[str, str] = {}
    for error in errors:
        *path, name = error["loc"]
        holder: Any = flat
        for part in path:
            holder = holder.get(part) if isinstance(holder, dict) else None
        if isinstance(holder, dict) and name in holder:
            unreadable[".".join(map(str, error["loc"]))] = repr(holder.pop(name))[:200]
    try:
        verdict = DsxaVerdict.model_validate(flat)
    except ValidationError:
        raise PermanentError(f"scanner answered with JSON that is not a verdict: {problems}") from None
    verdict.verdict_details = verdict.verdict_details.model_copy(update={"unreadable_fields": unreadable})
    return verdict


_KNOWN = frozenset(v.value for v in Verdict)
_SEPARATORS = re.compile(r"[\s_-]+")


def _folded(word: str) -> str:
    """A verdict word without case or separators: ``NOT_SCANNED``, ``not-scanned``, ``NotScanned``."""
    return _SEPARATORS.sub("", word.casefold())


_BY_FOLDED = {_folded(v.value): v.value for v in Verdict}


def _normalize(verdict: DsxaVerdict) -> None:
    """Map a verdict outside SPEC §3's list onto it, so every answer can be stored and counted.

    A known word in another case or spelling (``MALICIOUS``, ``not_scanned``) is read as that word;
    anything else becomes ``Unknown`` and the scanner's own word is kept as
    ``verdict_details.scanner_verdict``, so nothing it said is lost.
    """
    said = str(verdict.verdict)
    known = _BY_FOLDED.get(_folded(said))
    if known is not None:
        verdict.verdict = known
        return
    verdict.verdict = Verdict.UNKNOWN.value
    verdict.verdict_details = verdict.verdict_details.model_copy(update={"scanner_verdict": said})


def _fast_verdict(body: bytes | str | dict[str, Any]) -> DsxaVerdict | None:
    """The common snake_case answer, validated straight from its JSON (about half the cost of the
    lenient path); None when the body needs the lenient path.

    A key the models do not declare lands in their extras. Most are kept as they are either way
    (``engine_version``, DSXA's container fields); only the keys the lenient path renames or moves
    (camelCase, the nested ``details`` form, ``x_custom_metadata``) send the body there.
    """
    if not isinstance(body, bytes):
        return None
    try:
        verdict = DsxaVerdict.model_validate_json(body)
    except ValidationError:
        return None  # e.g. a null reason or details: the lenient path copes
    extra = verdict.__pydantic_extra__
    details = verdict.verdict_details.__pydantic_extra__
    info = verdict.file_info.__pydantic_extra__
    if (
        (extra and not _RENAMED_TOP.isdisjoint(extra))
        or (details and not _DETAIL_KEYS.keys().isdisjoint(details))
        or (info and not _FILE_INFO_KEYS.keys().isdisjoint(info))
    ):
        return None
    return verdict


def _initializing(reason: str) -> bool:
    text = (reason or "").lower()
    return "initializ" in text or "initialis" in text


def _loads(body: bytes | str) -> dict[str, Any]:
    try:
        data = json.loads(body)
    except (ValueError, UnicodeDecodeError, RecursionError) as exc:
        raise PermanentError(f"scanner answered with a body that is not JSON: {exc}") from None
    if not isinstance(data, dict):
        raise PermanentError("scanner answered with JSON that is not an object")
    if _may_escape_a_surrogate(body):
        data = _without_lone_surrogates(data)
    return data


def _may_escape_a_surrogate(body: bytes | str) -> bool:
    """Whether ``body`` holds a ``\\udXXX`` escape (looked for in place: no decoded copy)."""
    if isinstance(body, bytes):
        return b"\\ud" in body or b"\\uD" in body
    return "\\ud" in body or "\\uD" in body


def _without_lone_surrogates(data: dict[str, Any]) -> dict[str, Any]:
    """``data`` with each lone surrogate (a ``\\udXXX`` escape json accepts alone) replaced by
    U+FFFD: such text encodes to no UTF-8, and the result step's batch write to Redis failed on it,
    dead-lettering the answer's batch-mates too."""
    text = json.dumps(data, ensure_ascii=False)
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        cleaned: dict[str, Any] = json.loads(text.encode("utf-8", "surrogatepass").decode("utf-8", "replace"))
        return cleaned
    return data


def error_reason(body: bytes | str) -> str:
    """The reason carried by an error answer, whatever its shape (verdict-shaped or plain text)."""
    try:
        data = json.loads(body)
    except (ValueError, UnicodeDecodeError, RecursionError):  # (nested past the parser's depth)
        text = body.decode(errors="replace") if isinstance(body, bytes) else body
        return text.strip()[:500]
    if isinstance(data, dict):
        flat = _flatten(data)
        details = flat.get("verdict_details")
        if isinstance(details, dict) and details.get("reason"):
            return str(details["reason"])
        for key in ("reason", "message", "detail", "error"):
            if flat.get(key):
                return str(flat[key])
    return str(data)[:500]


def classify_status(status: int, body: bytes | str = b"") -> DsxError | None:
    """Map a scanner HTTP status to the error family; ``None`` for 200 (SPEC §3)."""
    if status == 200:
        return None
    reason = error_reason(body) if body else ""
    if status in (401, 403):
        return PermanentError(f"scanner refused the credentials ({status}): {reason}", status_code=status)
    if status == 400 and _initializing(reason):
        return RetryableError(f"scanner not ready: {reason}", status_code=status)
    if 400 <= status < 500 and status not in (408, 429):
        return PermanentError(f"scanner rejected the request ({status}): {reason}", status_code=status)
    return RetryableError(f"scanner unavailable ({status}): {reason}", status_code=status)
