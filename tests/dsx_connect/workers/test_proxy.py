"""Proxy variables and the hot path: refused at start when they would apply to the scanner."""

from __future__ import annotations

import subprocess
import sys

import pytest

from dsx_connect.settings import Settings, check_hot_path
from dsx_connect.workers.proxy import proxy_for, refuse_proxied_scanner
from shared.settings import SettingsError, load_settings
from tests.support.procs import REPO_ROOT, base_env

HTTPS_SCANNER = "https://dsxa.example.com/scan/binary/v2"
HTTP_SCANNER = "http://dsxa-lite:5000/scan/binary/v2"


@pytest.mark.unit
@pytest.mark.parametrize(
    ("url", "env", "expected"),
    [
        (HTTPS_SCANNER, {"HTTPS_PROXY": "http://proxy:3128"}, "HTTPS_PROXY"),
        (HTTPS_SCANNER, {"https_proxy": "http://a:1", "HTTPS_PROXY": "http://b:2"}, "https_proxy"),
        (HTTPS_SCANNER, {"HTTP_PROXY": "http://proxy:3128"}, None),  # another scheme's proxy
        (HTTP_SCANNER, {"HTTP_PROXY": "http://proxy:3128"}, "HTTP_PROXY"),
        (HTTP_SCANNER, {"ALL_PROXY": "socks5://proxy:1080"}, "ALL_PROXY"),
        (HTTP_SCANNER, {"HTTP_PROXY": "http://proxy:3128", "NO_PROXY": "dsxa-lite"}, None),
        (HTTPS_SCANNER, {"HTTPS_PROXY": "http://p:1", "no_proxy": ".example.com"}, None),
        (HTTPS_SCANNER, {"HTTPS_PROXY": "http://p:1", "NO_PROXY": "*"}, None),
        (HTTPS_SCANNER, {"HTTPS_PROXY": "http://p:1", "NO_PROXY": "other.example.org"}, "HTTPS_PROXY"),
        (HTTP_SCANNER, {"HTTP_PROXY": "  "}, None),
    ],
)
def test_which_variable_would_apply(url: str, env: dict[str, str], expected: str | None) -> None:
    found = proxy_for(url, env)
    assert (found[0] if found else None) == expected


@pytest.mark.unit
def test_the_refusal_names_the_variable_the_host_and_hides_credentials() -> None:
    with pytest.raises(SettingsError) as info:
        refuse_proxied_scanner(HTTPS_SCANNER, {"HTTPS_PROXY": "http://user:pw@proxy:3128"})
    message = str(info.value)
    assert "HTTPS_PROXY" in message and "add dsxa.example.com to NO_PROXY" in message
    assert "pw" not in message and "***@proxy:3128" in message


@pytest.mark.unit
def test_a_bad_client_names_the_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DSXCONNECT_SCANNER__CLIENT", "curl")
    with pytest.raises(SettingsError, match="DSXCONNECT_SCANNER__CLIENT"):
        load_settings(Settings)
    monkeypatch.setenv("DSXCONNECT_SCANNER__CLIENT", "aiohttp")
    assert load_settings(Settings).scanner.client == "aiohttp"
    check_hot_path(load_settings(Settings))  # installed here: accepted


@pytest.mark.integration
@pytest.mark.parametrize("entry", ["dsx_connect.app", "dsx_connect.workers.celery_app"])
def test_the_core_and_the_workers_refuse_to_start_behind_a_proxy_they_would_ignore(entry: str) -> None:
    env = base_env(DSXCONNECT_SCANNER__SCAN_BINARY_URL=HTTP_SCANNER, HTTP_PROXY="http://proxy.invalid:3128")
    env.pop("NO_PROXY", None)
    env.pop("no_proxy", None)
    proc = subprocess.run(
        [sys.executable, "-c", f"import {entry}"], env=env, cwd=REPO_ROOT, capture_output=True, timeout=60
    )
    assert proc.returncode != 0
    assert b"HTTP_PROXY" in proc.stderr and b"NO_PROXY" in proc.stderr
    assert b"Traceback" not in proc.stderr
