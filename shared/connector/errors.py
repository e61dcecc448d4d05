"""Map whatever a connector raises into the shared error family, and that family onto HTTP.

    OSError / library error ──classify_error()──▶ DsxError ──http_status()──▶ HTTP answer

    NotFoundError (FileNotFoundError, NotADirectoryError) ......... 404
    ItemChangedError (a guarded action on a changed item) ......... 412
    OutsideAssetError ............................................. 403 (400 for malformed)
    UnsupportedError (an action or event the connector can't do) .. 400 (or as raised)
    PermanentError (PermissionError, IsADirectoryError, bad input)  400 / 403
    RetryableError (timeouts, connection errors, other OSError) ... 503
    anything else ................................................. 500 (retryable)

A connector whose storage library has its own exceptions overrides ``Connector.classify_error``
and falls back to :func:`classify_error` for the rest.
"""

from __future__ import annotations

import errno

from shared.errors import DsxError, NotFoundError, OutsideAssetError, PermanentError, RetryableError
from shared.item_version import ERROR_ITEM_CHANGED, ERROR_NOT_FOUND, ITEM_CHANGED_STATUS


class UnsupportedError(PermanentError):
    """The connector cannot do this (an action such as ``tag`` on a filesystem, a webhook)."""


class ItemChangedError(PermanentError):
    """The item no longer has the version the core scanned: a guarded action touches nothing (412)."""

    def __init__(self, message: str) -> None:
        super().__init__(message, status_code=ITEM_CHANGED_STATUS)


def check_version(location: str, expected: str | None, current: str | None) -> None:
    """Raise ``ItemChangedError`` when ``expected`` is given and differs from ``current``."""
    if expected is not None and expected != current:
        raise ItemChangedError(f"item changed since it was scanned: {location!r}")


def classify_error(exc: BaseException) -> DsxError:
    """The ``DsxError`` that describes ``exc`` (returned unchanged when it already is one)."""
    if isinstance(exc, DsxError):
        return exc
    if isinstance(exc, FileNotFoundError | NotADirectoryError):
        return NotFoundError("item not found", status_code=404)
    if isinstance(exc, PermissionError):
        return PermanentError("permission denied", status_code=403)
    if isinstance(exc, IsADirectoryError):
        return PermanentError("location is a folder, not an item", status_code=400)
    if isinstance(exc, TimeoutError | ConnectionError):
        return RetryableError(f"{type(exc).__name__}: {exc}", status_code=503)
    if isinstance(exc, OSError):
        if exc.errno in (errno.ENAMETOOLONG, errno.ELOOP, errno.EINVAL):
            return PermanentError(f"invalid location: {exc.strerror}", status_code=400)
        return RetryableError(f"storage error: {exc.strerror or exc}", status_code=503)
    return RetryableError(f"internal error: {type(exc).__name__}: {exc}", status_code=500)


def http_status(err: DsxError) -> int:
    """The HTTP status a route answers for ``err``."""
    if err.status_code:
        return err.status_code
    if isinstance(err, NotFoundError):
        return 404
    if isinstance(err, OutsideAssetError):
        return 403
    if isinstance(err, PermanentError):
        return 400
    return 503


def error_kind(err: DsxError) -> str:
    """A short machine-readable name for the error's class (additive ``error`` field)."""
    if isinstance(err, ItemChangedError):
        return ERROR_ITEM_CHANGED
    if isinstance(err, NotFoundError):
        return ERROR_NOT_FOUND
    if isinstance(err, OutsideAssetError):
        return "outside_asset"
    if isinstance(err, UnsupportedError):
        return "unsupported"
    if isinstance(err, PermanentError):
        return "permanent"
    return "retryable"
