"""The core's ``/docs`` in a real browser (Debian's chromium, Playwright): Swagger UI comes from the
core itself, under the same Content-Security-Policy as the dashboard, and renders the API.

FastAPI's own page loaded Swagger UI from a CDN and went without a CSP: a compromised CDN would have
run its script beside the operator's session, and an air-gapped site had no docs."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.dashboard.conftest import CHROMIUM
from tests.support.procs import core_alone

sync_api = pytest.importorskip("playwright.sync_api", reason="the playwright package is not installed")
expect = sync_api.expect

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(180)]


@pytest.fixture(scope="module")
def core_url(tmp_path_factory: pytest.TempPathFactory, logs_dir: Path) -> Iterator[str]:
    with core_alone(
        tmp_path_factory.mktemp("api-docs"), logs_dir, "api-docs", DSXCONNECT_AUTH__ENABLED="false"
    ) as (
        url,
        _,
    ):
        yield url


def test_swagger_ui_renders_from_the_core_alone_under_its_csp(core_url: str) -> None:
    requested: list[str] = []
    console: list[str] = []
    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=CHROMIUM,
            args=["--headless=new", "--no-sandbox", "--disable-gpu", "--no-first-run"],
        )
        try:
            tab = browser.new_page()
            tab.set_default_timeout(20_000)
            tab.on("request", lambda request: requested.append(request.url))
            tab.on("console", lambda message: console.append(f"{message.type}: {message.text}"))
            tab.on("pageerror", lambda error: console.append(f"pageerror: {error}"))
            answer = tab.goto(core_url + "/docs")
            assert answer is not None and "default-src 'self'" in answer.headers["content-security-policy"]
            expect(tab.locator(".swagger-ui .info .title")).to_contain_text("dsx-connect")
            expect(
                tab.locator('.opblock-summary-path[data-path="/dsx-connect/api/v1/scan/results"]')
            ).to_be_visible()
        finally:
            browser.close()
    assert requested and all(url.startswith(core_url + "/") for url in requested), requested
    assert not [
        line for line in console if "Content Security Policy" in line or line.startswith("pageerror")
    ], console
