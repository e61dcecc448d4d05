"""Rules reload without a restart: SIGHUP and ``POST /admin/reload`` swap the rule set, the
identity in ``/version`` and in answers follows, and a broken rule set keeps the old one."""

from __future__ import annotations

import os
import shutil
import signal
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from dsxa_lite.settings import DEFAULT_RULES_DIR
from tests.support.procs import wait_for

from ..samples import filler, sha256
from ..servers import TOKEN, Scanner, running_scanner

pytestmark = pytest.mark.integration

NEW_MARKER = b"RELOADED-RULE-MARKER-4711"
NEW_RULE = (
    'rule Reloaded { meta: threat_type = "WORM" strings: $a = "RELOADED-RULE-MARKER-4711" condition: $a }'
)


@pytest.fixture
def rules(tmp_path: Path) -> Path:
    folder = tmp_path / "rules"
    shutil.copytree(DEFAULT_RULES_DIR, folder)
    return folder


@pytest.fixture
def reload_scanner(rules: Path, tmp_path: Path, logs_dir: Path) -> Iterator[Scanner]:
    blocklist = tmp_path / "blocklist.txt"
    blocklist.write_text("")
    env = {"DSXA_LITE_RULES_DIR": str(rules), "DSXA_LITE_BLOCKLIST_FILE": str(blocklist)}
    with running_scanner("dsxa-lite-reload", env, logs_dir) as running:
        yield running


def version(scanner: Scanner) -> dict[str, object]:
    body: dict[str, object] = httpx.get(scanner.url + "/version").json()
    return body


def verdict(scanner: Scanner, data: bytes) -> dict[str, object]:
    answer: dict[str, object] = httpx.post(scanner.url + "/scan/binary/v2", content=data).json()
    return answer


def by_hash(scanner: Scanner, data: bytes) -> object:
    return httpx.post(scanner.url + "/scan/by_hash", content=sha256(data)).json()["verdict"]


def test_sighup_reloads_rules_and_block_list(reload_scanner: Scanner, rules: Path, tmp_path: Path) -> None:
    sample = filler(500) + NEW_MARKER
    blocked = b"blocked after the reload\n"
    before = version(reload_scanner)
    first = verdict(reload_scanner, sample)
    assert first["verdict"] == "Benign"
    assert by_hash(reload_scanner, sample) == "Benign"  # seen by this scanner
    assert first["engine_version"] == before["identity"]
    (rules / "extra.yar").write_text(NEW_RULE)
    (tmp_path / "blocklist.txt").write_text(f"{sha256(blocked)} RANSOMWARE\n")
    assert reload_scanner.process.proc is not None
    os.kill(reload_scanner.process.proc.pid, signal.SIGHUP)
    wait_for(
        lambda: version(reload_scanner)["rules_version"] != before["rules_version"], 20, what="the reload"
    )
    after = version(reload_scanner)
    assert by_hash(reload_scanner, sample) == "Unknown"  # verdicts of the old rules are forgotten
    assert after["last_reload"]["ok"] is True and after["last_reload"]["trigger"] == "SIGHUP"  # type: ignore[index]
    assert "extra.yar" in after["rule_files"]  # type: ignore[operator]
    hit = verdict(reload_scanner, sample)
    assert (hit["verdict"], hit["engine_version"]) == ("Malicious", after["identity"])
    assert hit["verdict_details"] == {
        "event_description": "File identified as malicious",
        "reason": "yara: Reloaded",
        "threat_type": "WORM",
    }
    assert verdict(reload_scanner, blocked)["verdict_details"]["threat_type"] == "RANSOMWARE"  # type: ignore[index]


def test_broken_rules_keep_the_old_set_and_say_why(reload_scanner: Scanner, rules: Path) -> None:
    before = version(reload_scanner)
    (rules / "broken.yar").write_text("rule Broken { condition: $nothing }")
    response = httpx.post(reload_scanner.url + "/admin/reload")
    assert response.status_code == 422
    body = response.json()
    assert body["ok"] is False and "broken.yar" in body["error"]
    after = version(reload_scanner)
    assert after["rules_version"] == before["rules_version"]
    # /version answers anyone: it says the reload failed, not why (the reason quotes the rules)
    assert after["last_reload"]["ok"] is False and after["last_reload"]["at"] == body["at"]  # type: ignore[index]
    assert "broken.yar" not in str(after)
    assert verdict(reload_scanner, filler(100))["verdict"] == "Benign"  # still scanning


def test_rule_with_a_threat_type_outside_the_enum_is_refused_on_reload(
    reload_scanner: Scanner, rules: Path
) -> None:
    (rules / "bad-meta.yar").write_text(
        'rule T { meta: threat_type = "TEST" strings: $a = "zz9" condition: $a }'
    )
    response = httpx.post(reload_scanner.url + "/admin/reload")
    assert response.status_code == 422
    assert "threat_type" in response.json()["error"]


def test_reload_route_takes_the_scanner_token(rules: Path, logs_dir: Path) -> None:
    env = {"DSXA_LITE_RULES_DIR": str(rules), "DSXA_LITE_AUTH_TOKEN": TOKEN}
    with running_scanner("dsxa-lite-reload-auth", env, logs_dir) as scanner:
        assert httpx.post(scanner.url + "/admin/reload").status_code == 401
        assert httpx.post(scanner.url + "/admin/reload", headers={"AUTH_TOKEN": "wrong"}).status_code == 401
        answer = httpx.post(scanner.url + "/admin/reload", headers={"AUTH_TOKEN": TOKEN})
        assert answer.status_code == 200 and answer.json()["trigger"] == "api"


@pytest.mark.unit
def test_reload_route_without_a_token_refuses_other_hosts() -> None:
    import anyio

    from dsxa_lite.app import create_app
    from dsxa_lite.settings import DsxaLiteSettings

    async def call(client_host: str) -> int:
        transport = httpx.ASGITransport(app=create_app(DsxaLiteSettings()), client=(client_host, 4242))
        async with httpx.AsyncClient(transport=transport, base_url="http://scanner") as client:
            return (await client.post("/admin/reload")).status_code

    assert anyio.run(call, "10.1.2.3") == 403
    assert anyio.run(call, "127.0.0.1") == 200
