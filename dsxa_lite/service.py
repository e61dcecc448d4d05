"""The scan service: the engines in order, and the verdict each body gets.

Order: size check, EICAR, block list, YARA; the first hit wins. Small bodies are scanned on the
event loop (a few µs); spooled ones in a worker thread, at most ``LARGE_SCAN_CONCURRENCY`` at once.
"""

from __future__ import annotations

import hashlib
import logging
import uuid
from dataclasses import dataclass

import anyio
import anyio.to_thread

from dsxa_lite.body import ReceivedBody
from dsxa_lite.engines import Engine, Hit, ScanInput, ScanTimeout
from dsxa_lite.engines.blocklist import BlocklistEngine, read_blocklist_file
from dsxa_lite.engines.eicar import EicarEngine
from dsxa_lite.engines.yara import YARA_X_VERSION, YaraEngine
from dsxa_lite.filetype import detect_file_type
from dsxa_lite.settings import SHA256_RE, DsxaLiteSettings
from shared.models import Verdict

BENIGN_DESCRIPTION = "File identified as benign"
MALICIOUS_DESCRIPTION = "File identified as malicious"
FILE_TOO_LARGE = "File Size Too Large"

log = logging.getLogger("dsxa_lite.scan")


@dataclass(frozen=True, slots=True)
class Outcome:
    """What the engines concluded about one file (the scan-independent part of a verdict)."""

    verdict: str
    event_description: str
    reason: str
    threat_type: str | None
    file_type: str
    size: int
    sha256: str


def verdict_document(
    outcome: Outcome, duration_us: int, protected_entity: int = 1, custom_metadata: str | None = None
) -> dict[str, object]:
    """The SPEC §3 response object for ``outcome``, with a fresh ``scan_guid``."""
    return {
        "scan_guid": uuid.uuid4().hex,
        "verdict": outcome.verdict,
        "verdict_details": {
            "event_description": outcome.event_description,
            "reason": outcome.reason,
            "threat_type": outcome.threat_type,
        },
        "file_info": {
            "file_type": outcome.file_type,
            "file_size_in_bytes": outcome.size,
            "file_hash": outcome.sha256,
        },
        "scan_duration_in_microseconds": duration_us,
        "protected_entity": protected_entity,
        "X-Custom-Metadata": custom_metadata,
    }


class ScanFailed(Exception):
    """An engine failed on a file (already logged with its traceback): a 500, retryable."""


class ScanService:
    """Builds the engines once from settings and scans bodies with them."""

    def __init__(self, settings: DsxaLiteSettings) -> None:
        self.settings = settings
        token = settings.auth_token
        self.auth_token = token.get_secret_value().encode() if token is not None else None
        hashes = list(settings.blocklist)
        if settings.blocklist_file is not None:
            hashes += read_blocklist_file(settings.blocklist_file)
        self.eicar = EicarEngine()
        self.blocklist = BlocklistEngine(hashes)
        self.yara = YaraEngine(
            settings.rules_dir,
            timeout_s=settings.scan_timeout_s,
            window_bytes=settings.yara_window_bytes,
            overlap_bytes=settings.yara_window_overlap_bytes,
        )
        self.engines: tuple[Engine, ...] = (self.eicar, self.blocklist, self.yara)
        self.engine_version = f"yara-x {YARA_X_VERSION}"
        combined = f"rules:{self.yara.digest}\nblocklist:{self.blocklist.digest}\n"
        self.rules_version = hashlib.sha256(combined.encode()).hexdigest()[:16]
        self._limiter: anyio.CapacityLimiter | None = None

    def detect(self, item: ScanInput) -> Hit | None:
        """The first engine hit for ``item``, or None."""
        for engine in self.engines:
            hit = engine.scan(item)
            if hit is not None:
                return hit
        return None

    def scan(self, body: ReceivedBody) -> Outcome:
        """Verdict for a received body (blocking: call it in a thread for spooled bodies)."""
        file_type = detect_file_type(body.head)
        if body.too_large:
            limit = self.settings.max_file_size_bytes
            description = f"File of {body.size} bytes exceeds the scanner limit of {limit} bytes"
            return Outcome(
                Verdict.NON_COMPLIANT, description, FILE_TOO_LARGE, None, file_type, body.size, body.sha256
            )
        item = ScanInput(
            body.sha256,
            body.size,
            body.head,
            file_type,
            data=body.data,
            fd=body.spool.fileno() if body.spool is not None else None,
        )
        failure = None
        try:
            hit = self.detect(item)
        except ScanTimeout as exc:
            return Outcome(
                Verdict.NOT_SCANNED,
                "File could not be scanned",
                str(exc),
                None,
                file_type,
                body.size,
                body.sha256,
            )
        except Exception as exc:
            log.warning("scan failed", exc_info=True, extra={"sha256": body.sha256, "size": body.size})
            failure = f"scan failed: {type(exc).__name__}"
        if failure is not None:
            # raised outside the except block: no traceback (whose frames hold this thread's
            # yara_x.Scanner) travels to the event loop's thread
            raise ScanFailed(failure)
        if hit is None:
            return Outcome(Verdict.BENIGN, BENIGN_DESCRIPTION, "", None, file_type, body.size, body.sha256)
        return Outcome(
            Verdict.MALICIOUS,
            MALICIOUS_DESCRIPTION,
            hit.reason,
            hit.threat_type,
            file_type,
            body.size,
            body.sha256,
        )

    def close(self) -> None:
        """Release the engines' per-thread state; call from the thread that built the service."""
        self.yara.close()

    async def ascan(self, body: ReceivedBody) -> Outcome:
        """:meth:`scan`, in place for bodies in memory and in a limited worker thread otherwise."""
        if body.spool is None:
            return self.scan(body)
        if self._limiter is None:
            self._limiter = anyio.CapacityLimiter(self.settings.large_scan_concurrency)
        return await anyio.to_thread.run_sync(self.scan, body, limiter=self._limiter)

    def lookup_hash(self, sha256: str) -> Outcome:
        """Verdict for a bare SHA-256: Malicious when known bad, else Unknown (the file itself
        was never seen, so it cannot be called benign).
        """
        sha256 = sha256.strip().lower()
        if not SHA256_RE.fullmatch(sha256):
            raise ValueError("not a SHA-256 hex digest")
        hit = self.eicar.lookup(sha256) or self.blocklist.lookup(sha256)
        if hit is None:
            return Outcome(
                Verdict.UNKNOWN, "Hash not known", "Hash not on the block list", None, "Unknown", 0, sha256
            )
        return Outcome(
            Verdict.MALICIOUS, MALICIOUS_DESCRIPTION, hit.reason, hit.threat_type, "Unknown", 0, sha256
        )
