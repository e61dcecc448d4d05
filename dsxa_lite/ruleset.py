"""The detection content of one moment: engines built from the rules folder, the block list and
clamd, plus the identity that names them (reported by ``/version`` and in every answer).

A :class:`RuleSet` never changes once built; a reload builds a new one off the request path and
the scan service swaps it in with one assignment, so a scan uses one rule set from start to end.
"""

from __future__ import annotations

import hashlib
import threading
from collections.abc import Callable
from dataclasses import dataclass, field

from dsxa_lite.engines import Engine, Hit, ScanInput
from dsxa_lite.engines.blocklist import BlocklistEngine, parse_entry, read_blocklist_file
from dsxa_lite.engines.clamav import ClamavEngine, ClamdError
from dsxa_lite.engines.eicar import EicarEngine
from dsxa_lite.engines.yara import YARA_X_VERSION, RulesError, YaraEngine
from dsxa_lite.settings import DsxaLiteSettings
from dsxa_lite.version import __version__
from shared.models import utcnow_iso


def verdict_settings(settings: DsxaLiteSettings) -> str:
    """The settings that decide verdicts, as one line for the identity: whether and how far
    archives are unpacked, whether archive passwords are configured (their number, never a
    digest of them: ``/version`` answers anyone, and a digest could be guessed offline), the
    YARA windows and the size limit. Timeouts, concurrency, caches and addresses decide none."""
    fields = (
        f"archives={settings.archives}",
        f"depth={settings.archive_max_depth}",
        f"members={settings.archive_max_members}",
        f"total={settings.archive_max_total_bytes}",
        f"ratio={settings.archive_max_ratio}",
        f"ratio_floor={settings.archive_ratio_floor_bytes}",
        f"archive_time={settings.archive_time_limit_s!r}",
        f"passwords={len(settings.archive_passwords)}",
        f"window={settings.yara_window_bytes}",
        f"overlap={settings.yara_window_overlap_bytes}",
        f"max_size={settings.max_file_size_bytes}",
    )
    return " ".join(fields)


class RuleSetError(ValueError):
    """A rule set that cannot be built; the message says which part and why."""


@dataclass(frozen=True, slots=True)
class RuleSet:
    """Engines and identity. ``engines`` scan a file as sent (clamd included when configured);
    ``member_engines`` scan archive members (clamd unpacks archives itself); ``identity`` names
    the scanner, its engines and its rules in one string that changes when any of them does."""

    eicar: EicarEngine
    blocklist: BlocklistEngine
    yara: YaraEngine
    clamav: ClamavEngine | None
    engine_version: str
    rules_version: str
    loaded_at: str = field(default_factory=utcnow_iso)
    # what ``rules_version`` digests besides clamd's version (see :func:`load_ruleset`), and
    # clamd's ``VERSION`` answer it was built with: :meth:`with_clamd_version` needs both
    sources: tuple[str, str] = ("", "")
    clamd_version: str = ""
    engines: tuple[Engine, ...] = field(init=False)
    member_engines: tuple[Engine, ...] = field(init=False)
    identity: str = field(init=False)

    def __post_init__(self) -> None:
        # computed once: the hot path reads them on every scan
        members: tuple[Engine, ...] = (self.eicar, self.blocklist, self.yara)
        engines = (*members, self.clamav) if self.clamav is not None else members
        identity = f"dsxa_lite {__version__}; {self.engine_version}; rules {self.rules_version}"
        object.__setattr__(self, "member_engines", members)
        object.__setattr__(self, "engines", engines)
        object.__setattr__(self, "identity", identity)

    def with_clamd_version(self, clamd_version: str) -> RuleSet:
        """This rule set (the same engines) named after clamd's new ``VERSION`` answer: freshclam
        changed clamd's signatures, so the identity must change too (verdict caches key on it).
        Its ``loaded_at`` stays: the rules were not loaded again."""
        return RuleSet(
            self.eicar,
            self.blocklist,
            self.yara,
            self.clamav,
            _engine_version(clamd_version),
            _rules_version(self.sources, clamd_version),
            self.loaded_at,
            self.sources,
            clamd_version,
        )

    def detect(self, item: ScanInput) -> Hit | None:
        """The first engine hit for a file as sent, or None."""
        for engine in self.engines:
            hit = engine.scan(item)
            if hit is not None:
                return hit
        return None

    def detect_streamed(self, item: ScanInput, yara_result: Callable[[], Hit | None]) -> Hit | None:
        """:meth:`detect` for a body whose YARA windows were scanned as it arrived
        (:mod:`dsxa_lite.streamed`; never with clamd): ``yara_result`` gives their hit."""
        return self.eicar.scan(item) or self.blocklist.scan(item) or yara_result()

    def detect_member(self, item: ScanInput) -> Hit | None:
        """The first engine hit for an archive member, or None."""
        for engine in self.member_engines:
            hit = engine.scan(item)
            if hit is not None:
                return hit
        return None

    def close(self) -> None:
        """Release per-thread engine state (call from the owner thread)."""
        self.yara.close()


def load_ruleset(settings: DsxaLiteSettings, owner: threading.Thread | None = None) -> RuleSet:
    """Build the engines from ``settings`` (blocking: compiles rules, asks clamd its version).

    ``owner`` is the thread that will scan small files inline (the event loop's); the default is
    the calling thread. Raises :class:`RuleSetError` naming the variable and the problem.
    """
    entries = [parse_entry(text, separator=":") for text in settings.blocklist]
    if settings.blocklist_file is not None:
        try:
            entries += read_blocklist_file(settings.blocklist_file)
        except SystemExit as exc:  # SettingsError: the same message, without stopping a reload
            raise RuleSetError(str(exc)) from None
    try:
        yara = YaraEngine(
            settings.rules_dir,
            timeout_s=settings.scan_timeout_s,
            window_bytes=settings.yara_window_bytes,
            overlap_bytes=settings.yara_window_overlap_bytes,
            owner=owner,
            session_time_limit_s=settings.archive_time_limit_s,
        )
    except RulesError as exc:
        raise RuleSetError(f"invalid configuration:\n  DSXA_LITE_RULES_DIR: {exc}") from None
    blocklist = BlocklistEngine(entries)
    clamav = None
    clamd_version = ""
    if settings.clamd is not None:
        clamav = ClamavEngine(settings.clamd, timeout_s=settings.clamd_timeout_s)
        try:
            clamd_version = clamav.version()
        except ClamdError as exc:
            raise RuleSetError(f"invalid configuration:\n  DSXA_LITE_CLAMD: {exc}") from None
    sources = (
        f"rules:{yara.digest}\nblocklist:{blocklist.digest}\n",
        f"settings:{verdict_settings(settings)}\n",
    )
    return RuleSet(
        EicarEngine(),
        blocklist,
        yara,
        clamav,
        _engine_version(clamd_version),
        _rules_version(sources, clamd_version),
        sources=sources,
        clamd_version=clamd_version,
    )


def _engine_version(clamd_version: str) -> str:
    return f"yara-x {YARA_X_VERSION}, {clamd_version}" if clamd_version else f"yara-x {YARA_X_VERSION}"


def _rules_version(sources: tuple[str, str], clamd_version: str) -> str:
    """The digest of the rules and block list, clamd's version and the settings (``sources``: the
    parts before and after clamd's)."""
    combined = f"{sources[0]}clamd:{clamd_version}\n{sources[1]}"
    return hashlib.sha256(combined.encode()).hexdigest()[:16]
