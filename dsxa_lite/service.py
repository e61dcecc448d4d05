"""The scan service: the engines in order, archives opened, and the verdict each body gets.

Order: size check, EICAR, block list, YARA, ClamAV (when configured); the first hit wins. An
archive with no hit on its own bytes is then unpacked (``dsxa_lite.archives``) and the worst
member's verdict wins. Small plain bodies (up to ``INLINE_SCAN_BYTES``) are scanned on the event
loop (a few µs); larger plain bodies kept in memory are YARA-scanned in a YARA worker process
(:mod:`dsxa_lite.yara_worker`): yara-x holds the GIL while it scans, so in a thread a slow rule
would freeze the event loop all the same. Spooled bodies, archives and anything ClamAV must see
go to a worker thread, at most ``LARGE_SCAN_CONCURRENCY`` at once. A large plain body of known size, with no clamd configured,
is scanned by YARA as it arrives instead (:meth:`ScanService.stream_scan`, at most
``LARGE_SCAN_CONCURRENCY`` at once too), so it is never spooled.

The engines live in a :class:`~dsxa_lite.ruleset.RuleSet` that :meth:`ScanService.reload`
replaces atomically (compiled in a thread, swapped with one assignment on the event loop).
"""

from __future__ import annotations

import asyncio
import logging
import threading
import uuid
from collections.abc import Sequence
from dataclasses import dataclass

import anyio
import anyio.to_thread

from dsxa_lite.archives import CONTAINER_TYPES, ArchiveLimits, ArchiveScan, container_type
from dsxa_lite.archives.walker import UNSUPPORTED_CONTAINERS
from dsxa_lite.body import ReceivedBody
from dsxa_lite.cache import VerdictCache
from dsxa_lite.engines import HEAD_BYTES, Engine, Hit, ScanInput, ScanTimeout
from dsxa_lite.engines.clamav import ClamdError
from dsxa_lite.filetype import detect_file_type
from dsxa_lite.ruleset import RuleSet, RuleSetError, load_ruleset
from dsxa_lite.settings import SHA256_RE, DsxaLiteSettings
from dsxa_lite.streamed import StreamedScan
from dsxa_lite.threats import ThreatType
from dsxa_lite.yara_worker import YaraWorker, YaraWorkers
from shared.models import Verdict, utcnow_iso
from shared.settings import SettingsError

BENIGN_DESCRIPTION = "File identified as benign"
MALICIOUS_DESCRIPTION = "File identified as malicious"
NOT_SCANNED_DESCRIPTION = "File could not be scanned"
NON_COMPLIANT_DESCRIPTION = "File does not comply with the scanner's limits"
UNSUPPORTED_DESCRIPTION = "File type not supported"
FILE_TOO_LARGE = "File Size Too Large"
_DESCRIPTIONS = {
    Verdict.BENIGN: BENIGN_DESCRIPTION,
    Verdict.MALICIOUS: MALICIOUS_DESCRIPTION,
    Verdict.NOT_SCANNED: NOT_SCANNED_DESCRIPTION,
    Verdict.NON_COMPLIANT: NON_COMPLIANT_DESCRIPTION,
    Verdict.UNSUPPORTED: UNSUPPORTED_DESCRIPTION,
}

log = logging.getLogger("dsxa_lite.scan")

# Plain bodies up to this size are scanned on the event loop: the default rules take ~2.6 ms on
# 64 KiB of adversarial bytes (336 ms on 8 MiB), and the thread and process hops cost more than
# the scan of a typical small file. Larger ones go to a YARA worker process.
INLINE_SCAN_BYTES = 64 * 1024


#: ``kind`` not looked for yet (:meth:`ScanService.scan`)
_NOT_LOOKED = object()


@dataclass(frozen=True, slots=True)
class Outcome:
    """What the engines concluded about one file (the scan-independent part of a verdict).

    ``container_*`` describe an unpacked archive: members scanned (all levels), their bytes, and
    the archive's own SHA-256 (None for a file that is not an archive).
    """

    verdict: str
    event_description: str
    reason: str
    threat_type: ThreatType | None
    file_type: str
    size: int
    sha256: str
    identity: str = ""
    container_files_scanned: int = 0
    container_files_scanned_size: int = 0
    container_hash: str | None = None


def verdict_document(
    outcome: Outcome,
    duration_us: int,
    protected_entity: int = 1,
    custom_metadata: str | None = None,
    scan_guid: str | None = None,
) -> dict[str, object]:
    """The SPEC §3 response object for ``outcome`` (a fresh ``scan_guid`` unless given), with
    DSXA's container fields and ``engine_version`` (the scanner's identity, see ``RuleSet``)."""
    return {
        "scan_guid": scan_guid or uuid.uuid4().hex,
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
            "container_hash": outcome.container_hash,
        },
        "scan_duration_in_microseconds": duration_us,
        "container_files_scanned": outcome.container_files_scanned,
        "container_files_scanned_size": outcome.container_files_scanned_size,
        "protected_entity": protected_entity,
        "X-Custom-Metadata": custom_metadata,
        "engine_version": outcome.identity,
    }


class ScanFailed(Exception):
    """An engine failed on a file (already logged with its traceback): a 500, retryable."""


@dataclass(frozen=True, slots=True)
class ReloadResult:
    """What a reload did: ``ok`` with the new identity, or the reason the old rules stay."""

    ok: bool
    trigger: str
    at: str
    rules_version: str
    identity: str
    error: str | None = None


class ScanService:
    """Holds the current rule set and scans bodies with it."""

    def __init__(self, settings: DsxaLiteSettings) -> None:
        self.settings = settings
        token = settings.auth_token
        self.auth_token = token.get_secret_value().encode() if token is not None else None
        try:
            self.ruleset: RuleSet = load_ruleset(settings)
        except RuleSetError as exc:
            raise SettingsError(str(exc)) from None
        self.limits = ArchiveLimits(
            max_depth=settings.archive_max_depth,
            max_members=settings.archive_max_members,
            max_total_bytes=settings.archive_max_total_bytes,
            max_ratio=settings.archive_max_ratio,
            ratio_floor_bytes=settings.archive_ratio_floor_bytes,
            time_limit_s=settings.archive_time_limit_s,
        )
        self.passwords = [secret.get_secret_value() for secret in settings.archive_passwords]
        self.cache: VerdictCache[Outcome] = VerdictCache(settings.verdict_cache_size)
        self.last_reload: ReloadResult | None = None
        self._unpacked = CONTAINER_TYPES if settings.archives else frozenset()
        self._limiter: anyio.CapacityLimiter | None = None
        self._worker_limiter: anyio.CapacityLimiter | None = None  # in-memory bodies in a worker
        self._streaming = 0  # bodies being scanned as they arrive (StreamedScan)
        self._yara_workers = YaraWorkers()  # their YARA, out of this process's GIL
        self._reload_lock: asyncio.Lock | None = None

    # the current rule set's parts, for the health routes and the logs
    @property
    def engines(self) -> tuple[Engine, ...]:
        return self.ruleset.engines

    @property
    def rules_version(self) -> str:
        return self.ruleset.rules_version

    @property
    def engine_version(self) -> str:
        return self.ruleset.engine_version

    @staticmethod
    def _outcome(
        ruleset: RuleSet,
        body: ReceivedBody,
        file_type: str,
        verdict: Verdict,
        reason: str,
        *,
        description: str | None = None,
        threat_type: ThreatType | None = None,
        files_scanned: int = 0,
        bytes_scanned: int = 0,
        container_hash: str | None = None,
    ) -> Outcome:
        return Outcome(
            verdict.value,
            description or _DESCRIPTIONS[verdict],
            reason,
            threat_type,
            file_type,
            body.size,
            body.sha256,
            ruleset.identity,
            files_scanned,
            bytes_scanned,
            container_hash,
        )

    def stream_scan(self, head: bytes, declared_size: int | None) -> StreamedScan | None:
        """A scan that takes a large body as it arrives, when nothing needs it whole: its size is
        declared (``Content-Length``) and within the limit, its first bytes are no archive to
        unpack, no clamd is configured, and fewer than ``LARGE_SCAN_CONCURRENCY`` bodies stream
        already. None otherwise: the body spools (call on the event loop)."""
        ruleset = self.ruleset
        if (
            declared_size is None
            or declared_size > self.settings.max_file_size_bytes
            or len(head) < min(HEAD_BYTES, declared_size)
            or ruleset.clamav is not None
            or self._streaming >= self.settings.large_scan_concurrency
        ):
            return None
        file_type = detect_file_type(head)
        if file_type in self._unpacked:
            return None
        self._streaming += 1
        worker = None
        try:
            worker = self._yara_workers.take(ruleset.yara)
            return StreamedScan(ruleset, file_type, declared_size, self._stream_ended, worker)
        except BaseException:  # the slot back, or after this many failures nothing would stream again
            self._stream_ended(worker)
            raise

    def _stream_ended(self, worker: YaraWorker | None) -> None:
        self._streaming -= 1
        if worker is not None:
            self._yara_workers.give_back(worker)

    def scan(
        self,
        body: ReceivedBody,
        passwords: Sequence[str] = (),
        file_type: str | None = None,
        kind: object = _NOT_LOOKED,
    ) -> Outcome:
        """Verdict for a received body (blocking: call it in a thread unless it is small and plain).
        ``kind``: the archive kind to walk it as, when the caller looked already (:meth:`ascan`)."""
        ruleset = self.ruleset  # one rule set for the whole scan, whatever a reload does meanwhile
        if body.streamed is not None:
            ruleset = body.streamed.ruleset  # the one its windows were scanned with
        if file_type is None:
            file_type = detect_file_type(body.head)
        if body.too_large:
            limit = self.settings.max_file_size_bytes
            description = f"File of {body.size} bytes exceeds the scanner limit of {limit} bytes"
            return self._outcome(
                ruleset, body, file_type, Verdict.NON_COMPLIANT, FILE_TOO_LARGE, description=description
            )
        outcome = self._scan(ruleset, body, file_type, passwords, kind)
        if outcome.verdict != Verdict.NOT_SCANNED:
            self.cache.put(ruleset.identity, body.sha256, outcome)
        return outcome

    def _scan(
        self,
        ruleset: RuleSet,
        body: ReceivedBody,
        file_type: str,
        passwords: Sequence[str],
        kind: object = _NOT_LOOKED,
    ) -> Outcome:
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
            if body.streamed is not None:
                hit = self._streamed_hit(ruleset, item, body.streamed)
            else:
                hit = ruleset.detect(item)
            if hit is not None:
                return self._outcome(
                    ruleset, body, file_type, Verdict.MALICIOUS, hit.reason, threat_type=hit.threat_type
                )
            # a ZIP with bytes in front (a self-extractor, a polyglot) is walked too
            if kind is _NOT_LOOKED:
                kind = self._container(body, file_type)
            if isinstance(kind, str):
                return self._scan_archive(ruleset, body, file_type, passwords, kind)
            if file_type in UNSUPPORTED_CONTAINERS and self.settings.archives:
                return self._outcome(
                    ruleset, body, file_type, Verdict.UNSUPPORTED, f"{file_type} archives are not unpacked"
                )
            # built directly: the one outcome of nearly every scan
            return Outcome(
                "Benign", BENIGN_DESCRIPTION, "", None, file_type, body.size, body.sha256, ruleset.identity
            )
        except ScanTimeout as exc:
            return self._outcome(ruleset, body, file_type, Verdict.NOT_SCANNED, str(exc))
        except ClamdError as exc:
            log.warning("clamd failed", extra={"error": str(exc), "sha256": body.sha256})
            failure = f"scan failed: {exc}"
        except Exception as exc:
            log.warning("scan failed", exc_info=True, extra={"sha256": body.sha256, "size": body.size})
            failure = f"scan failed: {type(exc).__name__}"
        # raised outside the except block: no traceback (whose frames hold this thread's
        # yara_x.Scanner) travels to the event loop's thread
        raise ScanFailed(failure)

    @staticmethod
    def _streamed_hit(ruleset: RuleSet, item: ScanInput, streamed: StreamedScan) -> Hit | None:
        """``RuleSet.detect`` for a body YARA scanned as it arrived (no clamd: see stream_scan)."""
        if streamed.size != item.size:
            raise ValueError(f"the body has {item.size} bytes, its Content-Length said {streamed.size}")
        return ruleset.detect_streamed(item, streamed.result)

    def _scan_archive(
        self, ruleset: RuleSet, body: ReceivedBody, file_type: str, passwords: Sequence[str], kind: str
    ) -> Outcome:
        walk = ArchiveScan(
            ruleset.detect_member,
            self.limits,
            container_size=body.size,
            passwords=[*passwords, *self.passwords],
            spool_threshold=self.settings.spool_threshold_bytes,
            spool_dir=self.settings.spool_dir,
        )
        with ruleset.yara.session():
            result = walk.run(body, kind)
        return self._outcome(
            ruleset,
            body,
            file_type,
            result.verdict,
            result.reason,
            threat_type=result.threat_type,
            files_scanned=result.files_scanned,
            bytes_scanned=result.bytes_scanned,
            container_hash=body.sha256,
        )

    def close(self) -> None:
        """Release the engines' per-thread state and stop the YARA workers; call from the thread
        that built the service."""
        self.ruleset.close()
        self._yara_workers.close()

    async def ascan(self, body: ReceivedBody, passwords: Sequence[str] = ()) -> Outcome:
        """:meth:`scan`, in place for small plain bodies (in memory, not an archive, no clamd to
        ask), with YARA in a worker process for larger plain ones, and in a limited worker
        thread otherwise."""
        file_type = detect_file_type(body.head)
        kind = self._container(body, file_type)  # looked for once a scan: it reads the body's tail
        plain = body.spool is None and self.ruleset.clamav is None and kind is None
        if (
            body.too_large
            or (body.streamed is not None and kind is None)  # its YARA windows were scanned already
            or (plain and body.size <= INLINE_SCAN_BYTES)
        ):
            return self.scan(body, passwords, file_type, kind)
        if plain and body.data is not None:
            outcome = await self._scan_in_worker(body, passwords, file_type)
            if outcome is not None:
                return outcome
        if self._limiter is None:
            self._limiter = anyio.CapacityLimiter(self.settings.large_scan_concurrency)
        return await anyio.to_thread.run_sync(
            self.scan, body, passwords, file_type, kind, limiter=self._limiter
        )

    def _container(self, body: ReceivedBody, file_type: str) -> str | None:
        """The archive kind to walk ``body`` as (None: not one, or archives are off)."""
        return container_type(body, file_type) if self.settings.archives else None

    async def _scan_in_worker(
        self, body: ReceivedBody, passwords: Sequence[str], file_type: str
    ) -> Outcome | None:
        """:meth:`scan` of an in-memory plain body with its YARA windows scanned in a YARA worker
        process (as a streamed body's), at most ``LARGE_SCAN_CONCURRENCY`` at once; None where no
        worker process can start."""
        if self._worker_limiter is None:
            self._worker_limiter = anyio.CapacityLimiter(self.settings.large_scan_concurrency)
        data = body.data
        assert data is not None
        async with self._worker_limiter:
            ruleset = self.ruleset
            try:
                worker = self._yara_workers.take(ruleset.yara)
            except Exception:  # a worker that cannot start: YARA in a thread, as without one
                log.warning("no YARA worker process for an in-memory body", exc_info=True)
                worker = None
            if worker is None:
                return None
            streamed = StreamedScan(ruleset, file_type, body.size, self._worker_done, worker)
            try:
                # in a thread: it writes into the worker's buffers and waits for its answers
                # (not cancellable: the worker is handed back only once it has answered)
                await anyio.to_thread.run_sync(_feed_whole, streamed, data)
                body.streamed = streamed
                return self.scan(body, passwords, file_type, None)  # plain: no archive to walk
            finally:
                body.streamed = None
                streamed.close()

    def _worker_done(self, worker: YaraWorker | None) -> None:
        if worker is not None:
            self._yara_workers.give_back(worker)

    def lookup_hash(self, sha256: str) -> Outcome:
        """Verdict for a bare SHA-256: the block list (and EICAR's hash), then the verdict this
        scanner gave the file when it last saw it, else Unknown (never seen: not called benign).
        """
        sha256 = sha256.strip().lower()
        if not SHA256_RE.fullmatch(sha256):
            raise ValueError("not a SHA-256 hex digest")
        ruleset = self.ruleset
        hit = ruleset.eicar.lookup(sha256) or ruleset.blocklist.lookup(sha256)
        if hit is not None:
            return Outcome(
                Verdict.MALICIOUS.value,
                MALICIOUS_DESCRIPTION,
                hit.reason,
                hit.threat_type,
                "Unknown",
                0,
                sha256,
                ruleset.identity,
            )
        seen = self.cache.get(ruleset.identity, sha256)
        if seen is not None:
            return seen
        return Outcome(
            Verdict.UNKNOWN.value,
            "Hash not known",
            "Hash not on the block list and not seen by this scanner",
            None,
            "Unknown",
            0,
            sha256,
            ruleset.identity,
        )

    async def reload(self, trigger: str) -> ReloadResult:
        """Rebuild the rule set from the rules folder, block list and clamd, off the event loop,
        and swap it in; on failure keep the current one and say why. One reload at a time."""
        if self._reload_lock is None:
            self._reload_lock = asyncio.Lock()
        async with self._reload_lock:
            owner = threading.current_thread()
            try:
                fresh = await anyio.to_thread.run_sync(load_ruleset, self.settings, owner)
            except RuleSetError as exc:
                current = self.ruleset
                result = ReloadResult(
                    False, trigger, utcnow_iso(), current.rules_version, current.identity, str(exc)
                )
                log.error(
                    "rules reload failed; the current rules stay",
                    extra={"trigger": trigger, "error": str(exc)},
                )
            else:
                old, self.ruleset = self.ruleset, fresh
                old.close()  # on the event loop's thread, the owner of its inline scanner
                self.cache.clear()
                result = ReloadResult(True, trigger, utcnow_iso(), fresh.rules_version, fresh.identity)
                log.info(
                    "rules reloaded",
                    extra={
                        "trigger": trigger,
                        "rules_version": fresh.rules_version,
                        "previous": old.rules_version,
                    },
                )
            self.last_reload = result
            return result


def _feed_whole(streamed: StreamedScan, data: bytes) -> None:
    streamed.feed([data])
    streamed.finish()
