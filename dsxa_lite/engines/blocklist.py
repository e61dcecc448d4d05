"""SHA-256 block list: files whose hash is listed are malicious (threat type ``BLOCKLISTED``)."""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from pathlib import Path

from dsxa_lite.engines import Hit, ScanInput
from dsxa_lite.settings import SHA256_RE
from shared.settings import SettingsError


def read_blocklist_file(path: Path, variable: str = "DSXA_LITE_BLOCKLIST_FILE") -> list[str]:
    """Hashes from ``path``: one SHA-256 hex a line, blank lines and ``#`` comments ignored.

    A line that is not a hash stops the service, naming ``variable``, the file and the line.
    """
    hashes = []
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise SettingsError(f"invalid configuration:\n  {variable}: cannot read {path}: {exc}") from None
    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.split("#", 1)[0].strip().lower()
        if not line:
            continue
        if not SHA256_RE.fullmatch(line):
            raise SettingsError(
                f"invalid configuration:\n  {variable}: {path}:{number} is not a SHA-256 hex digest"
                f" (got {line[:80]!r})"
            )
        hashes.append(line)
    return hashes


class BlocklistEngine:
    """Matches the file's SHA-256 against a fixed set of hashes."""

    name = "blocklist"

    def __init__(self, hashes: Iterable[str]) -> None:
        self.hashes = frozenset(h.lower() for h in hashes)
        digest = hashlib.sha256()
        for value in sorted(self.hashes):
            digest.update(value.encode() + b"\n")
        self.digest = digest.hexdigest()

    def __len__(self) -> int:
        return len(self.hashes)

    def scan(self, item: ScanInput) -> Hit | None:
        """Hit when the file's SHA-256 is listed."""
        return self.lookup(item.sha256)

    def lookup(self, sha256: str) -> Hit | None:
        """Hit when ``sha256`` (lower-case hex) is listed."""
        if sha256 in self.hashes:
            return Hit(self.name, f"sha256 {sha256}", "BLOCKLISTED", "SHA-256 on the block list")
        return None
