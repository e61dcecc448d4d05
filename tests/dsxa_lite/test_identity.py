"""The scanner's identity (``/version``, every answer's ``engine_version``) names everything that
decides a verdict: the core caches verdicts under it, so a change it misses serves stale ones."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from dsxa_lite.ruleset import load_ruleset
from dsxa_lite.settings import DEFAULT_RULES_DIR, DsxaLiteSettings

pytestmark = pytest.mark.unit


def identity(**settings: Any) -> str:
    ruleset = load_ruleset(DsxaLiteSettings(**settings))
    try:
        return ruleset.identity
    finally:
        ruleset.close()


def test_identity_follows_a_file_pulled_in_by_include(tmp_path: Path) -> None:
    rules = tmp_path / "rules"
    rules.mkdir()
    extra = tmp_path / "extra.inc"  # not a *.yar of the folder: only the include names it
    extra.write_text('rule Extra { strings: $a = "FIRST-BAD-STRING" condition: $a }\n')
    (rules / "main.yar").write_text(f'include "{extra}"\n')
    before = identity(rules_dir=rules)
    assert identity(rules_dir=rules) == before  # stable while nothing changes
    extra.write_text('rule Extra { strings: $a = "SECOND-BAD-STRING" condition: $a }\n')
    assert identity(rules_dir=rules) != before


@pytest.mark.parametrize(
    "change",
    [
        {"archives": False},
        {"archive_max_depth": 2},
        {"archive_max_members": 10},
        {"archive_max_total_bytes": 1024},
        {"archive_max_ratio": 5},
        {"archive_ratio_floor_bytes": 1024},
        {"archive_time_limit_s": 1.5},
        {"archive_passwords": "infected"},
        {"yara_window_bytes": 1024 * 1024},
        {"yara_window_overlap_bytes": 4096},
        {"max_file_size_bytes": 1024},
    ],
    ids=lambda change: next(iter(change)),
)
def test_identity_follows_the_settings_that_decide_verdicts(change: dict[str, Any]) -> None:
    assert identity(**change) != identity()


def test_identity_does_not_follow_settings_that_decide_no_verdict(tmp_path: Path) -> None:
    rules = tmp_path / "rules"
    shutil.copytree(DEFAULT_RULES_DIR, rules)  # the same rules from another folder
    base = identity()
    assert identity(rules_dir=rules, port=5001, verdict_cache_size=10, large_scan_concurrency=7) == base


def test_identity_is_the_same_in_another_process() -> None:
    # replicas and restarts share the core's cached verdicts: the compiled rules must serialize alike
    code = "from dsxa_lite.ruleset import load_ruleset as l; from dsxa_lite.settings import DsxaLiteSettings as S; print(l(S()).identity)"
    other = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60
    )
    assert other.stdout.strip() == identity()


def test_identity_names_whether_passwords_are_set_not_which() -> None:
    # /version is unauthenticated: a digest of the passwords would let anyone guess them offline
    assert identity(archive_passwords="one") == identity(archive_passwords="two")
    assert identity(archive_passwords="one") != identity(archive_passwords="one,two")


def test_identity_follows_the_block_list_contents(tmp_path: Path) -> None:
    listed = tmp_path / "blocklist.txt"
    listed.write_text("a" * 64 + "\n")
    before = identity(blocklist_file=listed)
    listed.write_text("b" * 64 + "\n")
    assert identity(blocklist_file=listed) != before
    assert identity(blocklist="c" * 64) != identity()


def test_reload_after_an_included_file_changed_changes_the_identity(tmp_path: Path) -> None:
    import anyio

    from dsxa_lite.service import ScanService

    rules = tmp_path / "rules"
    rules.mkdir()
    extra = tmp_path / "extra.inc"
    extra.write_text('rule Extra { strings: $a = "FIRST-BAD-STRING" condition: $a }\n')
    (rules / "main.yar").write_text(f'include "{extra}"\n')
    service = ScanService(DsxaLiteSettings(rules_dir=rules))
    try:
        before = service.ruleset.identity
        extra.write_text('rule Extra { strings: $a = "SECOND-BAD-STRING" condition: $a }\n')
        result = anyio.run(service.reload, "test")
        assert result.ok and result.identity != before
    finally:
        service.close()
