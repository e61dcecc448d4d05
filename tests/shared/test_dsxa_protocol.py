"""The DSXA wire rules of SPEC §3: headers, lenient parsing, error classes."""

from __future__ import annotations

import json

import pytest

from shared.dsxa.protocol import (
    _fast_verdict,
    classify_status,
    custom_metadata,
    error_reason,
    parse_verdict,
    scan_headers,
)
from shared.errors import PermanentError, RetryableError

pytestmark = pytest.mark.unit

FLAT = {
    "scan_guid": "g1",
    "verdict": "Malicious",
    "verdict_details": {"event_description": "EICAR", "reason": "test file", "threat_type": "VIRUS"},
    "file_info": {"file_type": "Text", "file_size_in_bytes": 68, "file_hash": "ab" * 32},
    "scan_duration_in_microseconds": 120,
    "protected_entity": 3,
    "X-Custom-Metadata": "file-loc:a.txt",
    "container_files_scanned": 2,
}


def test_token_is_sent_as_auth_token_and_auth() -> None:
    headers = scan_headers("s3cret", 2, "file-loc:x")
    assert headers["AUTH_TOKEN"] == headers["AUTH"] == "s3cret"
    assert headers["protected_entity"] == "2"
    assert headers["X-Custom-Metadata"] == "file-loc:x"


def test_no_token_sends_no_auth_headers() -> None:
    assert "AUTH" not in scan_headers(None) and "AUTH_TOKEN" not in scan_headers(None)


def test_custom_metadata_has_the_four_fields_and_encodes_non_ascii() -> None:
    value = custom_metadata("dir/résumé.pdf", "résumé", "filesystem-connector", "abc123")
    assert value.startswith("file-loc:dir/r%C3%A9sum%C3%A9.pdf,file-meta:r%C3%A9sum%C3%A9,")
    assert value.endswith("dsx-connect:filesystem-connector,scan_request_task_id:abc123")
    assert value.isascii()


def test_custom_metadata_cannot_inject_header_lines() -> None:
    value = custom_metadata("a\r\nX-Evil: 1", "m", "c", "t")
    assert "\r" not in value and "\n" not in value


def test_flat_answer_keeps_every_field_and_extras() -> None:
    verdict = parse_verdict(json.dumps(FLAT).encode())
    assert verdict.verdict == "Malicious"
    assert verdict.verdict_details.threat_type == "VIRUS"
    assert verdict.file_info.file_hash == "ab" * 32
    assert verdict.x_custom_metadata == "file-loc:a.txt"
    assert verdict.model_extra == {"container_files_scanned": 2}


def test_nested_camel_case_answer_is_flattened() -> None:
    nested = {
        "scanGuid": "g2",
        "verdict": "Benign",
        "details": {
            "verdictDetails": {"eventDescription": "clean", "reason": None, "threatType": None},
            "fileInfo": {"fileType": "PDF", "fileSizeInBytes": 10, "fileHash": "cd" * 32},
            "xCustomMetadata": "file-loc:b",
        },
    }
    verdict = parse_verdict(nested)
    assert verdict.scan_guid == "g2"
    assert verdict.verdict_details.event_description == "clean"
    assert verdict.file_info.file_type == "PDF"
    assert verdict.file_info.file_size_in_bytes == 10
    assert verdict.x_custom_metadata == "file-loc:b"


def test_lower_case_metadata_echo_is_accepted() -> None:
    assert parse_verdict({"verdict": "Benign", "x_custom_metadata": "m"}).x_custom_metadata == "m"


def test_scanning_is_recorded_as_not_scanned() -> None:
    assert parse_verdict({"verdict": "Scanning"}).verdict == "Not Scanned"


def test_initializing_scanner_is_retryable() -> None:
    with pytest.raises(RetryableError):
        parse_verdict({"verdict": "Not Scanned", "verdict_details": {"reason": "Scanner is initializing"}})


def test_body_that_is_not_json_is_permanent() -> None:
    with pytest.raises(PermanentError):
        parse_verdict(b"<html>oops</html>")


@pytest.mark.parametrize(
    ("status", "kind"),
    [(401, PermanentError), (403, PermanentError), (400, PermanentError), (404, PermanentError),
     (413, PermanentError), (408, RetryableError), (429, RetryableError), (500, RetryableError),
     (502, RetryableError), (503, RetryableError)],
)  # fmt: skip
def test_status_classification(status: int, kind: type) -> None:
    assert isinstance(classify_status(status, b""), kind)


def test_200_is_not_an_error() -> None:
    assert classify_status(200, b"{}") is None


def test_reason_is_taken_from_a_verdict_shaped_400() -> None:
    body = json.dumps({"verdict": "Not Scanned", "verdict_details": {"reason": "Bad protected entity"}})
    error = classify_status(400, body.encode())
    assert isinstance(error, PermanentError)
    assert "Bad protected entity" in error.message


def test_initializing_400_is_retryable() -> None:
    body = json.dumps({"verdict": "Not Scanned", "verdict_details": {"reason": "Engine initializing"}})
    assert isinstance(classify_status(400, body.encode()), RetryableError)


def test_error_reason_of_plain_text() -> None:
    assert error_reason(b"  service unavailable \n") == "service unavailable"


@pytest.mark.parametrize(
    "answer",
    [
        {
            "verdict": "Benign",
            "verdict_details": {"event_description": "ok", "reason": ""},
            "engine_version": "1",
        },
        {
            "verdict": "Malicious",
            "verdict_details": {"reason": None, "threat_type": "Virus"},
            "scan_guid": "g",
        },
        {"verdict": "Benign", "verdict_details": None, "X-Custom-Metadata": "file-loc:a"},
        {"verdict": "Benign", "fileInfo": {"fileSizeInBytes": 3}, "scanGuid": "g"},
        FLAT | {"engine_version": "dsxa_lite 1; rules 2", "container_files_scanned_size": 0},
        FLAT | {"x_custom_metadata": "file-loc:b"},
        FLAT | {"details": {"threatType": "Worm"}},
        FLAT | {"verdict_details": {"reason": "r", "threatType": "Worm"}},
        FLAT | {"file_info": {"file_size_in_bytes": 4, "fileHash": "cd" * 32, "container_hash": None}},
    ],
)
def test_the_direct_json_path_reads_an_answer_as_the_lenient_one_does(answer: dict[str, object]) -> None:
    assert parse_verdict(json.dumps(answer).encode()) == parse_verdict(answer)


def test_answers_whose_extras_need_no_renaming_take_the_direct_path() -> None:
    """DSXA's container fields, dsxa_lite's ``engine_version`` and the echoed ``X-Custom-Metadata``
    are in every answer: they must not send it through the (twice as dear) lenient path."""
    common = FLAT | {
        "engine_version": "dsxa_lite 1",
        "file_info": FLAT["file_info"] | {"container_hash": None},
    }
    verdict = _fast_verdict(json.dumps(common).encode())
    assert verdict is not None
    assert verdict.model_extra == {"container_files_scanned": 2, "engine_version": "dsxa_lite 1"}
    assert verdict.x_custom_metadata == "file-loc:a.txt"
    for renamed in ({"scanGuid": "g"}, {"details": {}}, {"x_custom_metadata": "m"}):
        assert _fast_verdict(json.dumps(FLAT | renamed).encode()) is None
    camel_detail = FLAT | {"verdict_details": {"eventDescription": "e"}}
    assert _fast_verdict(json.dumps(camel_detail).encode()) is None


@pytest.mark.parametrize(
    ("said", "read"),
    [("MALICIOUS", "Malicious"), ("benign", "Benign"), ("not_scanned", "Not Scanned"),
     ("Unsupported  file type", "Unsupported File Type"), ("NON_COMPLIANT", "Non Compliant"),
     ("NonCompliant", "Non Compliant"), ("not-scanned", "Not Scanned")],
)  # fmt: skip
def test_a_known_verdict_in_another_spelling_is_read_as_that_verdict(said: str, read: str) -> None:
    for body in (json.dumps({**FLAT, "verdict": said}).encode(), {**FLAT, "verdict": said}):
        answer = parse_verdict(body)
        assert answer.verdict == read
        assert not hasattr(answer.verdict_details, "scanner_verdict")


def test_an_unknown_verdict_word_becomes_unknown_and_keeps_the_scanners_word() -> None:
    answer = parse_verdict(json.dumps({**FLAT, "verdict": "Suspicious"}).encode())
    assert answer.verdict == "Unknown"
    details = answer.verdict_details.model_dump()
    assert details["scanner_verdict"] == "Suspicious"
    assert details["reason"] == "test file"  # the rest of the answer is kept


def test_a_verdict_that_is_not_text_is_a_permanent_error_naming_the_field() -> None:
    for verdict in (None, ["Malicious"], {"word": "Malicious"}):
        with pytest.raises(PermanentError, match="verdict: Input should be a valid string"):
            parse_verdict(json.dumps({**FLAT, "verdict": verdict}).encode())


def test_a_number_for_a_verdict_or_a_text_field_is_read_as_text() -> None:
    answer = parse_verdict(
        json.dumps({**FLAT, "verdict": 7, "verdict_details": {"threat_type": 5, "reason": 1.5}}).encode()
    )
    assert answer.verdict == "Unknown" and answer.verdict_details.model_dump()["scanner_verdict"] == "7"
    assert (answer.verdict_details.threat_type, answer.verdict_details.reason) == ("5", "1.5")


@pytest.mark.parametrize(
    ("odd", "field"),
    [({"file_info": {**FLAT["file_info"], "file_size_in_bytes": "lots"}}, "file_info.file_size_in_bytes"),
     ({"verdict_details": "bad"}, "verdict_details"),
     ({"file_info": [1, 2]}, "file_info"),
     ({"scan_duration_in_microseconds": {"us": 3}}, "scan_duration_in_microseconds")],
)  # fmt: skip
def test_an_unreadable_field_never_costs_the_verdict(odd: dict[str, object], field: str) -> None:
    for body in (json.dumps({**FLAT, **odd}).encode(), {**FLAT, **odd}):
        answer = parse_verdict(body)
        assert answer.verdict == "Malicious"  # the word that matters is kept
        unreadable = answer.verdict_details.model_dump()["unreadable_fields"]
        assert list(unreadable) == [field]
        assert answer.model_dump()[field.split(".")[0]] is not None  # left at its default, typed


@pytest.mark.parametrize(("size", "read"), [(-1, 0), (2**70, 2**53 - 1), (5, 5)])
def test_a_size_no_file_can_have_is_read_as_one_that_keeps_the_counters_sound(size: int, read: int) -> None:
    for body in (
        json.dumps({**FLAT, "file_info": {"file_size_in_bytes": size}}).encode(),
        {**FLAT, "file_info": {"file_size_in_bytes": size}},
    ):
        assert parse_verdict(body).file_info.file_size_in_bytes == read


@pytest.mark.parametrize("escape", ["\\ud800", "\\uDFFF"])
def test_a_lone_surrogate_in_an_answer_becomes_text_that_encodes(escape: str) -> None:
    """json reads a lone ``\\udXXX`` escape into a str no UTF-8 can hold: the result step's batch
    write to Redis then failed, and every answer of that batch went to the dead letters."""
    body = (
        '{"scan_guid": "g", "verdict": "Malicious", "verdict_details": {"event_description": "x", '
        f'"reason": "Trojan{escape}.X"}}, "file_info": {{"file_type": "t", "file_size_in_bytes": 1, '
        f'"file_hash": "{"a" * 64}"}}, "scan_duration_in_microseconds": 1}}'
    )
    for raw in (body, body.encode()):
        verdict = parse_verdict(raw)
        assert verdict.verdict == "Malicious"
        reason = verdict.verdict_details.reason
        assert reason.startswith("Trojan") and reason.endswith(".X") and "\ufffd" in reason
        verdict.model_dump_json().encode("utf-8")  # encodes: no surrogate left
