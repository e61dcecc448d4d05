"""An event's stored text: the fast encoder writes what ``json`` wrote before it."""

from __future__ import annotations

import json

import pytest

from dsx_connect.results.rows import encode_event, to_row

pytestmark = pytest.mark.unit

_JSON = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"))

EVENTS = [
    {
        "scan_request_id": "r1",
        "location": "/data/fïle ✓.txt",
        "metainfo": "tab\there\nline",
        "verdict": "Benign",
    },
    {"file_info": {"size_in_bytes": 3 * 10**15, "sha256": None}, "scanner": {"cached": True, "ratio": 0.1}},
    {"large": 1.5e16, "negative": -3, "list": [1, "two", None, False, {"x": []}]},
    {"control": "\x00\x1f\x7f", "quote": 'say "hi" \\ bye', "emoji": "🦠", "empty": {}},
]


@pytest.mark.parametrize("event", EVENTS)
def test_the_stored_text_is_what_json_writes(event: dict[str, object]) -> None:
    text = encode_event(event)
    assert text == _JSON.encode(event)
    assert json.loads(text) == event


def test_small_floats_keep_their_value() -> None:
    """The one difference: ``2.5e-7`` where json wrote ``2.5e-07`` (same value; events carry few floats)."""
    event = {"small": 2.5e-7, "tiny": 1e-300, "third": 1 / 3}
    assert json.loads(encode_event(event)) == event
    assert " " not in encode_event(event)


def test_a_location_no_utf8_can_hold_is_still_encoded() -> None:
    """A lone surrogate (a file name of undecodable bytes) is refused by the fast encoder: json writes it."""
    event = {"location": "/data/bad\udcff.bin"}
    assert encode_event(event) == _JSON.encode(event)


def test_a_row_holds_only_a_real_sha256_and_a_size_bigint_can_hold() -> None:
    def row(sha256: object, size: int) -> dict[str, object]:
        event = {
            "scan_request_id": "r1",
            "verdict": "Benign",
            "file_info": {"sha256": sha256, "size_in_bytes": size},
        }
        return to_row(event, encode_event(event))

    assert row("AB" * 32, 5)["sha256"] == "ab" * 32
    assert [row(odd, 5)["sha256"] for odd in ("", None, "md5:" + "b" * 100, "g" * 64, "a" * 63)] == [None] * 5
    assert [row("", size)["size_bytes"] for size in (2**70, -(2**70), -1)] == [2**63 - 1, -(2**63 - 1), -1]
