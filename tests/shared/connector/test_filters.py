"""The 1.x-style include/exclude filter (``shared.connector.filters``)."""

from __future__ import annotations

import pytest

from shared.connector.filters import Filter

pytestmark = pytest.mark.unit


def selected(text: str, *locations: str) -> list[str]:
    f = Filter.parse(text)
    return [loc for loc in locations if f.matches(loc)]


def test_empty_filter_selects_everything() -> None:
    assert Filter.parse("").is_empty
    assert Filter.parse(None).matches("a/b/c.bin")
    assert Filter.parse(" , ,").is_empty


def test_pattern_without_slash_matches_at_any_depth() -> None:
    assert selected("*.pdf", "x.pdf", "a/b/x.pdf", "x.pdfx", "a/x.doc") == ["x.pdf", "a/b/x.pdf"]


def test_pattern_with_slash_is_anchored_at_the_root() -> None:
    assert selected("reports/*.xlsx", "reports/q1.xlsx", "old/reports/q1.xlsx", "reports/a/q1.xlsx") == [
        "reports/q1.xlsx"
    ]
    assert selected("/top.txt", "top.txt", "a/top.txt") == ["top.txt"]


def test_a_folder_pattern_selects_everything_beneath_it() -> None:
    assert selected("tmp", "tmp/a", "x/tmp/b/c", "tmpfile", "a/tmp") == ["tmp/a", "x/tmp/b/c", "a/tmp"]
    assert selected("docs/", "docs/a/b.txt", "b/docs/x", "docsx") == ["docs/a/b.txt", "b/docs/x"]


def test_double_star_spans_any_number_of_segments() -> None:
    assert selected("**/*.pdf", "x.pdf", "a/b/c/x.pdf", "x.txt") == ["x.pdf", "a/b/c/x.pdf"]
    assert selected("docs/**", "docs/a", "docs/a/b/c", "other/docs/a") == ["docs/a", "docs/a/b/c"]
    assert selected("a/**/b", "a/b", "a/x/y/b", "a/x/b/c", "ab") == ["a/b", "a/x/y/b", "a/x/b/c"]


def test_single_star_and_question_mark_stay_within_one_segment() -> None:
    assert selected("a/*", "a/x", "a/x/y") == ["a/x", "a/x/y"]  # a/x is a folder match for a/x/y
    assert selected("a/*.txt", "a/x.txt", "a/b/x.txt") == ["a/x.txt"]
    assert selected("?.txt", "a.txt", "ab.txt", "d/b.txt") == ["a.txt", "d/b.txt"]


def test_character_classes() -> None:
    assert selected("[ab]*.bin", "a1.bin", "c1.bin") == ["a1.bin"]
    assert selected("[!ab]*.bin", "a1.bin", "c1.bin") == ["c1.bin"]


def test_excludes_win_over_includes() -> None:
    f = "*.pdf,-secret/**"
    assert selected(f, "a.pdf", "secret/a.pdf", "secret/x/b.pdf", "a.doc") == ["a.pdf"]


def test_exclude_only_filter_keeps_everything_else() -> None:
    assert selected("-tmp, !*.log", "a.txt", "tmp/a.txt", "x/app.log", "b/c.bin") == ["a.txt", "b/c.bin"]


def test_plus_sign_is_an_explicit_include() -> None:
    assert selected("+*.exe,+*.dll", "a.exe", "b/c.dll", "d.txt") == ["a.exe", "b/c.dll"]


def test_regex_characters_are_literal() -> None:
    assert selected("a+b(1).txt", "a+b(1).txt", "aab1.txt") == ["a+b(1).txt"]


def test_prunes_folders_every_exclude_covers() -> None:
    f = Filter.parse("*.pdf,-archive,-**/cache/**")
    assert f.prunes("archive") and f.prunes("x/archive") and f.prunes("a/cache")
    assert not f.prunes("docs")
    assert not Filter.parse("*.pdf").prunes("docs")


@pytest.mark.parametrize("bad", ["-", "a,!", "a\nb", "x" * 9000])
def test_invalid_filters_are_refused_with_a_reason(bad: str) -> None:
    with pytest.raises(ValueError, match=r"\w"):
        Filter.parse(bad)
