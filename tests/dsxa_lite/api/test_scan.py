"""The DSXA scan routes against a real uvicorn (SPEC §3)."""

from __future__ import annotations

import base64
import hashlib
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from shared.models import DsxaVerdict
from tests.support.procs import wait_for

from ..dsxa_schema import check_answer
from ..samples import EICAR_SHA256, MARKER, MARKER_RULE, eicar, filler, sha256
from ..servers import BLOCKED_BY_ENV, BLOCKED_BY_FILE, TOKEN, Scanner, running_scanner

pytestmark = pytest.mark.integration

BINARY = "/scan/binary/v2"


@pytest.fixture(scope="module")
def client(scanner: Scanner) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=scanner.url, timeout=30) as http:
        yield http


def scan(
    client: httpx.Client, content: str | bytes | Iterator[bytes], path: str = BINARY, **headers: str
) -> dict[str, Any]:
    response = client.post(path, content=content, headers=headers)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "application/json"
    answer: dict[str, Any] = response.json()
    check_answer(answer)  # every answer: SPEC §3 verdicts, DSXA's threat types and field names
    return answer


def test_benign_file_answers_the_full_dsxa_shape(client: httpx.Client) -> None:
    data = filler(4096)
    answer = scan(client, data)
    assert set(answer) == {
        "scan_guid",
        "verdict",
        "verdict_details",
        "file_info",
        "scan_duration_in_microseconds",
        "container_files_scanned",
        "container_files_scanned_size",
        "protected_entity",
        "X-Custom-Metadata",
        "engine_version",
    }
    assert answer["verdict"] == "Benign"
    assert answer["verdict_details"] == {
        "event_description": "File identified as benign",
        "reason": "",
        "threat_type": None,
    }
    assert answer["file_info"] == {
        "file_type": "Text",
        "file_size_in_bytes": 4096,
        "file_hash": sha256(data),
        "container_hash": None,
    }
    assert (answer["container_files_scanned"], answer["container_files_scanned_size"]) == (0, 0)
    assert answer["engine_version"].startswith("dsxa_lite ")
    assert int(answer["scan_guid"], 16) and len(answer["scan_guid"]) == 32
    assert answer["scan_duration_in_microseconds"] > 0
    assert answer["protected_entity"] == 1
    assert answer["X-Custom-Metadata"] is None
    assert DsxaVerdict.model_validate(answer).file_info.file_hash == sha256(data)


def test_each_scan_gets_its_own_guid(client: httpx.Client) -> None:
    assert scan(client, b"a")["scan_guid"] != scan(client, b"a")["scan_guid"]


def test_eicar_is_malicious(client: httpx.Client) -> None:
    answer = scan(client, eicar() + b"\r\n")
    assert answer["verdict"] == "Malicious"
    assert answer["verdict_details"]["reason"] == "eicar: EICAR-Test-File"
    assert answer["verdict_details"]["event_description"] == "File identified as malicious"
    assert answer["file_info"]["file_size_in_bytes"] == 70


def test_yara_marker_is_malicious_naming_the_rule(client: httpx.Client) -> None:
    answer = scan(client, filler(1000) + MARKER)
    assert answer["verdict"] == "Malicious"
    assert answer["verdict_details"]["reason"] == f"yara: {MARKER_RULE}"
    assert answer["verdict_details"]["threat_type"] == "VIRUS"


@pytest.mark.parametrize("data", [BLOCKED_BY_ENV, BLOCKED_BY_FILE], ids=["env", "file"])
def test_blocklisted_hash_is_malicious(client: httpx.Client, data: bytes) -> None:
    answer = scan(client, data)
    assert answer["verdict"] == "Malicious"
    assert answer["verdict_details"] == {
        "event_description": "File identified as malicious",
        "reason": f"blocklist: sha256 {sha256(data)}",
        "threat_type": "VIRUS",
    }


def test_empty_body_is_a_benign_empty_file(client: httpx.Client) -> None:
    answer = scan(client, b"")
    assert answer["verdict"] == "Benign"
    assert answer["file_info"]["file_size_in_bytes"] == 0
    assert answer["file_info"]["file_hash"] == sha256(b"")


def test_protected_entity_and_metadata_are_echoed(client: httpx.Client) -> None:
    metadata = "file-loc:dir%2Fa.txt,file-meta:a.txt,dsx-connect:filesystem,scan_request_task_id:42"
    answer = scan(client, b"x", protected_entity="7", **{"X-Custom-Metadata": metadata})
    assert answer["protected_entity"] == 7
    assert answer["X-Custom-Metadata"] == metadata


def test_non_integer_protected_entity_is_a_400(client: httpx.Client) -> None:
    response = client.post(BINARY, content=b"x", headers={"protected_entity": "tenant-a"})
    assert response.status_code == 400
    assert response.json()["verdict"] == "Not Scanned"
    assert "protected_entity" in response.json()["verdict_details"]["reason"]


@pytest.mark.parametrize(
    "entity",
    ["-1", "2147483648", "9" * 5000, "+5", "1_000", "\u0663", "", "0x10"],
    ids=["negative", "past-int32", "5000-digits", "plus-sign", "underscore", "arabic-digit", "empty", "hex"],
)
def test_protected_entity_outside_0_to_int32_max_is_a_400(client: httpx.Client, entity: str) -> None:
    response = client.post(BINARY, content=b"x", headers={"protected_entity": entity.encode()})
    assert response.status_code == 400, response.text
    assert response.json()["verdict"] == "Not Scanned"
    assert "protected_entity" in response.json()["verdict_details"]["reason"]
    assert len(response.content) < 1000  # the value is not echoed


@pytest.mark.parametrize("entity", ["0", "2147483647", "042"])
def test_protected_entity_within_range_is_echoed(client: httpx.Client, entity: str) -> None:
    answer = scan(client, b"x", protected_entity=entity)
    assert answer["protected_entity"] == int(entity)


def test_file_at_the_size_limit_is_scanned(client: httpx.Client) -> None:
    data = filler(4 * 1024 * 1024 - len(MARKER)) + MARKER
    answer = scan(client, data)
    assert answer["verdict"] == "Malicious"
    assert answer["file_info"]["file_size_in_bytes"] == 4 * 1024 * 1024


def test_file_over_the_size_limit_is_non_compliant(client: httpx.Client) -> None:
    data = filler(4 * 1024 * 1024 + 1)
    answer = scan(client, data)
    assert answer["verdict"] == "Non Compliant"
    assert answer["verdict_details"]["reason"] == "File Size Too Large"
    assert answer["file_info"]["file_size_in_bytes"] == len(data)
    assert answer["file_info"]["file_hash"] == sha256(data)


WINDOW = 256 * 1024  # the scanner fixture's DSXA_LITE_YARA_WINDOW_BYTES


def chunked(data: bytes, size: int = 8192) -> Iterator[bytes]:
    for start in range(0, len(data), size):
        yield data[start : start + size]


def test_chunked_upload_past_the_spool_threshold_is_scanned(client: httpx.Client) -> None:
    data = filler(WINDOW * 4 + 777, seed=3)
    answer = scan(client, chunked(data))
    assert answer["verdict"] == "Benign"
    assert answer["file_info"]["file_size_in_bytes"] == len(data)
    assert answer["file_info"]["file_hash"] == sha256(data)


def test_chunked_upload_with_marker_across_a_window_boundary_is_malicious(client: httpx.Client) -> None:
    data = bytearray(filler(WINDOW * 4, seed=4))
    start = WINDOW - 10  # the marker crosses the end of the first window
    data[start : start + len(MARKER)] = MARKER
    answer = scan(client, chunked(bytes(data)))
    assert answer["verdict"] == "Malicious"
    assert answer["verdict_details"]["reason"] == f"yara: {MARKER_RULE}"
    assert answer["file_info"]["file_hash"] == sha256(bytes(data))


def test_spool_leaves_nothing_on_disk(client: httpx.Client, scanner: Scanner) -> None:
    spool_dir = Path(scanner.process.env["DSXA_LITE_SPOOL_DIR"])
    scan(client, chunked(filler(WINDOW * 2)))
    assert list(spool_dir.iterdir()) == []


def test_base64_body_is_decoded_then_scanned(client: httpx.Client) -> None:
    data = eicar()
    answer = scan(client, base64.encodebytes(data), path="/scan/base64/v2")
    assert answer["verdict"] == "Malicious"
    assert answer["file_info"]["file_hash"] == EICAR_SHA256
    benign = scan(client, base64.b64encode(b"plain words"), path="/scan/base64/v2")
    assert benign["verdict"] == "Benign"
    assert benign["file_info"]["file_hash"] == sha256(b"plain words")


def test_large_base64_body_is_spooled_and_scanned(client: httpx.Client) -> None:
    data = filler(WINDOW * 2) + MARKER
    answer = scan(client, chunked(base64.b64encode(data), 5000), path="/scan/base64/v2")
    assert answer["verdict"] == "Malicious"
    assert answer["file_info"]["file_size_in_bytes"] == len(data)


def test_bad_base64_is_a_verdict_shaped_400(client: httpx.Client) -> None:
    response = client.post("/scan/base64/v2", content=b"aGVs!!bG8=")
    assert response.status_code == 400
    body = response.json()
    assert body["verdict"] == "Not Scanned"
    assert body["verdict_details"]["reason"].startswith("invalid base64")


def test_by_hash_takes_a_bare_hash(client: httpx.Client) -> None:
    listed = sha256(BLOCKED_BY_ENV)
    answer = scan(client, listed.encode(), path="/scan/by_hash")
    assert answer["verdict"] == "Malicious"
    assert answer["file_info"]["file_hash"] == listed
    assert scan(client, sha256(b"never seen").encode(), path="/scan/by_hash")["verdict"] == "Unknown"


def test_by_hash_v2_takes_json_or_text(client: httpx.Client) -> None:
    listed = sha256(BLOCKED_BY_FILE)
    assert scan(client, json.dumps({"hash": listed}), path="/scan/by_hash/v2")["verdict"] == "Malicious"
    assert scan(client, f"{listed}\n", path="/scan/by_hash/v2")["verdict"] == "Malicious"
    assert scan(client, EICAR_SHA256, path="/scan/by_hash/v2")["verdict"] == "Malicious"
    unknown = scan(
        client, json.dumps({"hash": sha256(b"never sent to this scanner")}), path="/scan/by_hash/v2"
    )
    assert unknown["verdict"] == "Unknown"


def test_by_hash_answers_the_verdict_this_scanner_gave_the_file(client: httpx.Client) -> None:
    marked, clean = filler(300, seed=11) + MARKER, filler(300, seed=12)
    assert scan(client, sha256(marked), path="/scan/by_hash")["verdict"] == "Unknown"
    scan(client, marked)
    scan(client, clean)
    seen = scan(client, sha256(marked), path="/scan/by_hash")
    assert (seen["verdict"], seen["verdict_details"]["reason"]) == ("Malicious", f"yara: {MARKER_RULE}")
    assert seen["file_info"]["file_type"] == "Text"
    assert scan(client, sha256(clean), path="/scan/by_hash/v2")["verdict"] == "Benign"


@pytest.mark.parametrize("content", ["not-a-hash", '{"sha": "abc"}', "{broken", "a" * 5000])
def test_by_hash_refuses_what_is_not_a_sha256(client: httpx.Client, content: str) -> None:
    response = client.post("/scan/by_hash/v2", content=content)
    assert response.status_code == 400
    assert response.json()["verdict"] == "Not Scanned"


def test_each_scan_is_logged_as_one_debug_line(client: httpx.Client, scanner: Scanner) -> None:
    guid = scan(client, b"log me")["scan_guid"]

    def logged() -> list[dict[str, Any]]:
        return [json.loads(line) for line in scanner.log().splitlines() if guid in line]

    wait_for(logged, timeout=10, what="the scan's log line")
    (entry,) = logged()
    assert entry["level"] == "debug"
    assert entry["msg"] == "scan"
    assert entry["sha256"] == hashlib.sha256(b"log me").hexdigest()
    assert entry["service"] == "dsxa_lite"


@pytest.fixture(scope="module", params=["httptools", "h11"])
def auth_scanner(request: pytest.FixtureRequest, logs_dir: Path) -> Iterator[Scanner]:
    """A scanner that requires a token, on each HTTP implementation of uvicorn (header names with
    underscores must reach the app on both)."""
    with running_scanner(
        "dsxa-lite-auth", {"DSXA_LITE_AUTH_TOKEN": TOKEN}, logs_dir, http=request.param
    ) as running:
        yield running


@pytest.mark.parametrize(
    "headers", [{}, {"AUTH_TOKEN": "wrong"}, {"AUTH": "wrong"}, {"Authorization": TOKEN}]
)
@pytest.mark.parametrize("path", [BINARY, "/scan/base64/v2", "/scan/by_hash", "/scan/by_hash/v2"])
def test_missing_or_wrong_token_is_a_401(auth_scanner: Scanner, headers: dict[str, str], path: str) -> None:
    response = httpx.post(auth_scanner.url + path, content=EICAR_SHA256, headers=headers)
    assert response.status_code == 401
    assert response.json()["verdict"] == "Not Scanned"


@pytest.mark.parametrize("header", ["AUTH_TOKEN", "AUTH", "auth_token"])
def test_right_token_in_either_header_is_accepted(auth_scanner: Scanner, header: str) -> None:
    response = httpx.post(auth_scanner.url + BINARY, content=eicar(), headers={header: TOKEN})
    assert response.status_code == 200
    assert response.json()["verdict"] == "Malicious"


def test_refused_token_is_logged_as_a_warning(auth_scanner: Scanner) -> None:
    httpx.post(auth_scanner.url + BINARY, content=b"x", headers={"AUTH_TOKEN": "wrong"})

    def refusals() -> list[dict[str, Any]]:
        lines = [json.loads(line) for line in auth_scanner.log().splitlines() if line.startswith("{")]
        return [line for line in lines if line.get("status_code") == 401]

    wait_for(refusals, timeout=10, what="a logged 401")
    assert refusals()[0]["level"] == "warning"
    assert TOKEN not in auth_scanner.log()


def test_health_needs_no_token(auth_scanner: Scanner) -> None:
    for path in ("/healthz", "/readyz", "/alive", "/ping", "/version"):
        assert httpx.get(auth_scanner.url + path).status_code == 200, path
