"""A dsxa_lite ScanService in the test's own process: built from settings, fed whole bodies."""

from __future__ import annotations

from dsxa_lite.body import ReceivedBody
from dsxa_lite.service import Outcome, ScanService
from dsxa_lite.settings import DsxaLiteSettings

from .samples import sha256


def service(**values: object) -> ScanService:
    return ScanService(DsxaLiteSettings.model_validate(values))


def scan(scanner: ScanService, data: bytes, passwords: tuple[str, ...] = ()) -> Outcome:
    """``data`` as a body received whole (its head the first 4 KiB, as the service reads it)."""
    body = ReceivedBody(sha256(data), len(data), data[:4096], data=data)
    return scanner.scan(body, passwords)
