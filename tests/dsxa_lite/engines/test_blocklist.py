"""Block list engine and the block list file format."""

from __future__ import annotations

from pathlib import Path

import pytest

from dsxa_lite.engines import ScanInput
from dsxa_lite.engines.blocklist import BlocklistEngine, parse_entry, read_blocklist_file
from dsxa_lite.threats import ThreatType
from shared.settings import SettingsError

from ..samples import sha256

pytestmark = pytest.mark.unit


def item(data: bytes) -> ScanInput:
    return ScanInput(sha256(data), len(data), data[:4096], "Text", data=data)


def test_listed_hash_is_a_hit_naming_the_hash() -> None:
    bad = sha256(b"bad file")
    hit = BlocklistEngine([parse_entry(bad.upper())]).scan(item(b"bad file"))
    assert hit is not None
    assert hit.reason == f"blocklist: sha256 {bad}"
    assert hit.threat_type == "VIRUS"  # DSXA's enum, unless the entry says otherwise


def test_entry_may_name_its_threat_type() -> None:
    bad = sha256(b"worm")
    assert parse_entry(f"{bad} worm") == (bad, ThreatType.WORM)
    assert parse_entry(f"{bad}:RANSOMWARE", separator=":") == (bad, ThreatType.RANSOMWARE)
    hit = BlocklistEngine([parse_entry(f"{bad} WORM")]).scan(item(b"worm"))
    assert hit is not None and hit.threat_type == "WORM"


def test_entry_with_a_threat_type_outside_the_dsxa_enum_is_refused() -> None:
    with pytest.raises(ValueError, match="unknown threat type 'BLOCKLISTED'"):
        parse_entry(f"{sha256(b'x')} BLOCKLISTED")


def test_unlisted_hash_is_no_hit() -> None:
    assert BlocklistEngine([parse_entry(sha256(b"bad file"))]).scan(item(b"good file")) is None


def test_file_format_allows_comments_and_blank_lines(tmp_path: Path) -> None:
    a, b = sha256(b"a"), sha256(b"b")
    path = tmp_path / "blocklist.txt"
    path.write_text(f"# known bad\n\n{a}\n  {b.upper()} spyware # from the feed\n")
    assert read_blocklist_file(path) == [(a, ThreatType.VIRUS), (b, ThreatType.SPYWARE)]


def test_bad_line_names_the_variable_file_and_line(tmp_path: Path) -> None:
    path = tmp_path / "blocklist.txt"
    path.write_text(f"{sha256(b'a')}\nd41d8cd98f00b204e9800998ecf8427e\n")  # an MD5
    with pytest.raises(SettingsError, match=rf"DSXA_LITE_BLOCKLIST_FILE: {path}:2: not a SHA-256"):
        read_blocklist_file(path)


def test_digest_depends_on_the_set_only() -> None:
    a, b = parse_entry(sha256(b"a")), parse_entry(sha256(b"b"))
    assert BlocklistEngine([a, b]).digest == BlocklistEngine([b, a, a]).digest
    assert BlocklistEngine([a]).digest != BlocklistEngine([a, b]).digest
    assert BlocklistEngine([a]).digest != BlocklistEngine([(a[0], ThreatType.WORM)]).digest
