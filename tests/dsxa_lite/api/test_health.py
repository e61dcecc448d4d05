"""Identity and health routes (SPEC §1) and the version the core caches verdicts on."""

from __future__ import annotations

import re
import shutil
from datetime import datetime, timedelta
from pathlib import Path

import httpx
import pytest

from dsxa_lite.settings import DEFAULT_RULES_DIR
from dsxa_lite.version import __version__

from ..samples import MARKER, MARKER_RULE
from ..servers import Scanner, running_scanner

pytestmark = pytest.mark.integration


@pytest.mark.parametrize(
    ("path", "status"), [("/alive", "ok"), ("/ping", "pong"), ("/healthz", "ok"), ("/readyz", "ok")]
)
def test_health_routes_answer_status_and_rfc3339_utc_time(scanner: Scanner, path: str, status: str) -> None:
    response = httpx.get(scanner.url + path)
    assert response.status_code == 200
    body = response.json()
    assert body["status"] == status
    assert body["ts"].endswith("Z")
    assert datetime.fromisoformat(body["ts"].replace("Z", "+00:00")).utcoffset() == timedelta(0)


def test_version_names_service_engine_and_rules(scanner: Scanner) -> None:
    body = httpx.get(scanner.url + "/version").json()
    assert body["version"] == __version__
    assert body["engine_version"].startswith("yara-x ")
    assert re.fullmatch(r"[0-9a-f]{16}", body["rules_version"])
    assert (
        body["identity"]
        == f"dsxa_lite {__version__}; {body['engine_version']}; rules {body['rules_version']}"
    )
    assert body["archive_limits"]["max_depth"] == 5 and body["last_reload"] is None
    assert body["engines"] == ["eicar", "blocklist", "yara"]
    assert body["blocklist_size"] == 2


def test_rules_version_changes_when_the_rules_change(tmp_path: Path, logs_dir: Path) -> None:
    rules = tmp_path / "rules"
    shutil.copytree(DEFAULT_RULES_DIR, rules)
    with running_scanner("dsxa-lite-rules-a", {"DSXA_LITE_RULES_DIR": str(rules)}, logs_dir) as first:
        before = httpx.get(first.url + "/version").json()["rules_version"]
    (rules / "extra.yar").write_text('rule Extra_Marker { strings: $a = "extra-marker-text" condition: $a }')
    with running_scanner("dsxa-lite-rules-b", {"DSXA_LITE_RULES_DIR": str(rules)}, logs_dir) as second:
        after = httpx.get(second.url + "/version").json()["rules_version"]
        verdict = httpx.post(second.url + "/scan/binary/v2", content=b"an extra-marker-text here").json()
    assert after != before
    assert verdict["verdict_details"]["reason"] == "yara: Extra_Marker"


def test_openapi_documents_the_scan_routes(scanner: Scanner) -> None:
    paths = httpx.get(scanner.url + "/openapi.json").json()["paths"]
    for path in ("/scan/binary/v2", "/scan/base64/v2", "/scan/by_hash", "/scan/by_hash/v2", "/version"):
        assert path in paths


def test_readyz_names_a_missing_spool_folder(tmp_path: Path, logs_dir: Path) -> None:
    spool = tmp_path / "spool"
    spool.mkdir()
    env = {"DSXA_LITE_SPOOL_DIR": str(spool), "DSXA_LITE_SPOOL_THRESHOLD_BYTES": "1024"}
    with running_scanner("dsxa-lite-spool", env, logs_dir) as scanner:
        assert httpx.get(scanner.url + "/readyz").status_code == 200
        spool.rmdir()
        response = httpx.get(scanner.url + "/readyz")
        # chunked (no Content-Length): the body must spool, it cannot be scanned as it arrives
        scanned = httpx.post(scanner.url + "/scan/binary/v2", content=iter([bytes(4096)]))
        small = httpx.post(scanner.url + "/scan/binary/v2", content=b"fits in memory")
        # a plain body of declared size is scanned as it arrives: no spool needed
        streamed = httpx.post(scanner.url + "/scan/binary/v2", content=bytes(4096) + MARKER)
    assert response.status_code == 503
    assert response.json()["failing"] == "spool_dir"
    assert scanned.status_code == 503  # retryable: the core tries again later
    assert scanned.json()["verdict_details"]["reason"].startswith("cannot spool the body")
    assert small.json()["verdict"] == "Benign"
    assert streamed.status_code == 200
    assert streamed.json()["verdict_details"]["reason"] == f"yara: {MARKER_RULE}"
