"""SHA-256 block list: files whose hash is listed are malicious.

An entry is a SHA-256 hex digest, optionally followed by a DSXA threat type (``VIRUS`` when
omitted): ``<sha256> WORM`` in the file, ``<sha256>:WORM`` in the ``DSXA_LITE_BLOCKLIST`` CSV.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from pathlib import Path

from dsxa_lite.engines import Hit, ScanInput
from dsxa_lite.threats import ThreatType, parse_threat_type
from shared.settings import SettingsError

SHA256_HEX = frozenset("0123456789abcdef")
DEFAULT_THREAT_TYPE = ThreatType.VIRUS


def parse_entry(text: str, separator: str | None = None) -> tuple[str, ThreatType]:
    """``(sha256, threat type)`` from one entry; ValueError saying what is wrong."""
    parts = text.split(separator, 1) if separator else text.split(None, 1)
    digest = parts[0].strip().lower()
    if len(digest) != 64 or not SHA256_HEX.issuperset(digest):
        raise ValueError(f"not a SHA-256 hex digest: {digest[:80]!r}")
    kind = parse_threat_type(parts[1]) if len(parts) > 1 and parts[1].strip() else DEFAULT_THREAT_TYPE
    return digest, kind


def read_blocklist_file(
    path: Path, variable: str = "DSXA_LITE_BLOCKLIST_FILE"
) -> list[tuple[str, ThreatType]]:
    """Entries of ``path``: one a line (hash, optional threat type), blank lines and ``#`` comments
    ignored. A bad line raises :class:`SettingsError` naming ``variable``, the file and the line.
    """
    entries = []
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise SettingsError(f"invalid configuration:\n  {variable}: cannot read {path}: {exc}") from None
    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.split("#", 1)[0].strip()
        if not line:
            continue
        try:
            entries.append(parse_entry(line))
        except ValueError as exc:
            raise SettingsError(f"invalid configuration:\n  {variable}: {path}:{number}: {exc}") from None
    return entries


class BlocklistEngine:
    """Matches the file's SHA-256 against a fixed set of hashes, each with its threat type."""

    name = "blocklist"

    def __init__(self, entries: Iterable[tuple[str, ThreatType]]) -> None:
        self.entries = {digest.lower(): kind for digest, kind in entries}
        digest = hashlib.sha256()
        for value in sorted(self.entries):
            digest.update(f"{value} {self.entries[value]}\n".encode())
        self.digest = digest.hexdigest()

    def __len__(self) -> int:
        return len(self.entries)

    def scan(self, item: ScanInput) -> Hit | None:
        """Hit when the file's SHA-256 is listed."""
        return self.lookup(item.sha256)

    def lookup(self, sha256: str) -> Hit | None:
        """Hit when ``sha256`` (lower-case hex) is listed."""
        kind = self.entries.get(sha256)
        if kind is None:
            return None
        return Hit(self.name, f"sha256 {sha256}", kind, "SHA-256 on the block list")
