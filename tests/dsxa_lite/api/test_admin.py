"""``POST /admin/reload`` without a token (loopback only, never through a proxy) and what a failed
reload shows to whom: the reason (which quotes rule and block-list lines) to the caller of the
reload, only the failure to anyone asking ``/version``."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import httpx
import pytest

from dsxa_lite.settings import DEFAULT_RULES_DIR, DsxaLiteSettings
from tests.dsxa_lite.api.in_process import run_against

from ..servers import TOKEN

pytestmark = pytest.mark.unit

IOC = "secret-ioc-4711-do-not-leak"  # lower case: the block list quotes it so


@pytest.fixture
def rules(tmp_path: Path) -> Path:
    folder = tmp_path / "rules"
    shutil.copytree(DEFAULT_RULES_DIR, folder)
    return folder


@pytest.mark.parametrize(
    "forwarded",
    [
        {"X-Forwarded-For": "203.0.113.9"},
        {"Forwarded": "for=203.0.113.9"},
        {"X-Real-IP": "203.0.113.9"},
        {"X-Envoy-Attempt-Count": "1"},
        {"X-Forwarded-Proto": "https"},
    ],
    ids=lambda headers: next(iter(headers)),
)
def test_reload_through_a_proxy_needs_the_token(rules: Path, forwarded: dict[str, str]) -> None:
    # a sidecar proxy forwards every remote caller from loopback (Istio: 127.0.0.6)
    async def steps(client: httpx.AsyncClient) -> None:
        refused = await client.post("/admin/reload", headers=forwarded)
        assert refused.status_code == 403, refused.text
        assert "DSXA_LITE_AUTH_TOKEN" in refused.json()["verdict_details"]["reason"]
        direct = await client.post("/admin/reload")
        assert direct.status_code == 200, direct.text  # loopback itself, no proxy: as documented

    run_against(DsxaLiteSettings(rules_dir=rules), steps)


def test_reload_with_the_token_may_come_through_a_proxy(rules: Path) -> None:
    async def steps(client: httpx.AsyncClient) -> None:
        headers = {"X-Forwarded-For": "203.0.113.9", "AUTH_TOKEN": TOKEN}
        assert (await client.post("/admin/reload", headers=headers)).status_code == 200

    run_against(DsxaLiteSettings(rules_dir=rules, auth_token=TOKEN), steps)


def _break_rules(rules: Path, blocklist: Path) -> None:
    (rules / "broken.yar").write_text(f'rule Broken {{ strings: $a = "{IOC}" condition: $a and $nothing }}\n')


def _break_blocklist(rules: Path, blocklist: Path) -> None:
    blocklist.write_text(f"{IOC} not-a-hash\n")


@pytest.mark.parametrize("breaks", [_break_rules, _break_blocklist], ids=["rules", "blocklist"])
def test_version_says_a_reload_failed_not_why(rules: Path, tmp_path: Path, breaks: Any) -> None:
    blocklist = tmp_path / "blocklist.txt"
    blocklist.write_text("")

    async def steps(client: httpx.AsyncClient) -> None:
        breaks(rules, blocklist)  # after the start: a reload fails, the scanner stays up
        failed = await client.post("/admin/reload")
        assert failed.status_code == 422, failed.text
        assert IOC in failed.json()["error"]  # the operator who reloads sees why
        version = await client.get("/version")
        assert IOC not in version.text.lower()  # anyone else does not
        last = version.json()["last_reload"]
        assert last["ok"] is False and last["at"] == failed.json()["at"]
        assert last["error"] and "log" in last["error"]

    run_against(DsxaLiteSettings(rules_dir=rules, blocklist_file=blocklist), steps)
