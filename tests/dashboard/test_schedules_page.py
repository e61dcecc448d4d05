"""Setting and removing a connector's schedule from the dashboard's connectors table, in a real
browser (Debian's chromium, Playwright) against a real core (the API it calls is the one operators
script: ``/connectors/schedule/{uuid}``)."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import redis

from dsx_connect.state.jobs import JobStore
from tests.support.procs import ServiceProcess, base_env, free_port, redis_server, uvicorn_argv

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--headless=new", "--no-sandbox", "--disable-gpu", "--no-first-run"]

# without chromium: conftest.py's autouse fixture calls missing() (skips, or fails under
# DSX_REQUIRE_EMULATORS), before any stack of these tests starts
sync_api = pytest.importorskip("playwright.sync_api", reason="the playwright package is not installed")
expect = sync_api.expect

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(180)]

API = "/dsx-connect/api/v1"
CONNECTOR = str(uuid.uuid4())
SCHEDULED_JOB = "scheduled-job-0001"


@pytest.fixture(scope="module")
def core_url(tmp_path_factory: pytest.TempPathFactory, logs_dir: Path) -> Iterator[str]:
    with redis_server(tmp_path_factory.mktemp("schedules-page")) as (redis_url, _):
        port = free_port()
        env = base_env(
            DSXCONNECT_REDIS_URL=redis_url,
            DSXCONNECT_SCANNER__SCAN_BINARY_URL=f"http://127.0.0.1:{free_port()}/scan/binary/v2",
            DSXCONNECT_AUTH__ENABLED="false",
        )
        proc = ServiceProcess(
            f"schedules-page-{port}", uvicorn_argv("dsx_connect.app:app", port), env, logs_dir
        )
        proc.start()
        try:
            proc.wait_healthy(f"http://127.0.0.1:{port}/healthz")
            body = {
                "name": "nightly-share",
                "uuid": CONNECTOR,
                "url": "http://127.0.0.1:9/filesystem-connector",
                "asset": "/srv/share",
            }
            assert (
                httpx.post(f"http://127.0.0.1:{port}{API}/connectors/register", json=body).status_code == 201
            )
            jobs = JobStore(redis.Redis.from_url(redis_url, decode_responses=True))
            jobs.create(CONNECTOR, "nightly-share", job_id=SCHEDULED_JOB, trigger="schedule")
            yield f"http://127.0.0.1:{port}"
        finally:
            proc.stop()


@pytest.fixture(scope="module")
def page(core_url: str) -> Iterator[Any]:
    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        context = browser.new_context(viewport={"width": 1280, "height": 900}, timezone_id="UTC")
        tab = context.new_page()
        tab.set_default_timeout(20_000)
        tab.goto(core_url + "/")
        yield tab
        context.close()
        browser.close()


def row(page: Any) -> Any:
    return page.locator(f'#connectors-table tbody tr[data-uuid="{CONNECTOR}"]')


def test_an_operator_sets_a_schedule_and_sees_its_next_run(page: Any, core_url: str) -> None:
    expect(row(page)).to_contain_text("none")
    row(page).get_by_role("button", name="Schedule of nightly-share").click()
    dialog = page.locator("#schedule-dialog")
    expect(dialog).to_be_visible()
    dialog.locator('input[name="cron"]').fill("0 25 * * *")  # a bad hour: the API's 422 is shown
    dialog.get_by_role("button", name="Save schedule").click()
    expect(page.locator("#schedule-error")).to_contain_text("hour")
    dialog.locator('input[name="cron"]').fill("30 2 * * 1-5")
    dialog.locator('input[name="timezone"]').fill("Europe/Berlin")
    dialog.locator('input[name="rescan_on_scanner_change"]').check()
    dialog.get_by_role("button", name="Save schedule").click()
    expect(dialog).to_be_hidden()
    expect(row(page)).to_contain_text("30 2 * * 1-5 (Europe/Berlin)")
    expect(row(page)).to_contain_text("on scanner change")
    expect(row(page)).to_contain_text("next ")
    stored = httpx.get(f"{core_url}{API}/connectors/schedule/{CONNECTOR}").json()
    assert (stored["cron"], stored["timezone"], stored["rescan_on_scanner_change"]) == (
        "30 2 * * 1-5",
        "Europe/Berlin",
        True,
    )
    page.reload()  # the table reads schedules back from the API
    expect(row(page)).to_contain_text("30 2 * * 1-5 (Europe/Berlin)")
    page.set_viewport_size({"width": 390, "height": 844})  # a phone: the row stacks, nothing overflows
    expect(row(page).locator('td[data-label="Schedule"]')).to_contain_text("on scanner change")
    assert page.evaluate("document.documentElement.scrollWidth - window.innerWidth") <= 0
    page.set_viewport_size({"width": 1280, "height": 900})


def test_an_operator_removes_the_schedule(page: Any, core_url: str) -> None:
    row(page).get_by_role("button", name="Schedule of nightly-share").click()
    dialog = page.locator("#schedule-dialog")
    expect(dialog.locator('input[name="cron"]')).to_have_value("30 2 * * 1-5")
    dialog.get_by_role("button", name="Remove schedule").click()
    expect(dialog).to_be_hidden()
    expect(row(page)).to_contain_text("none")
    assert httpx.get(f"{core_url}{API}/connectors/schedule/{CONNECTOR}").status_code == 404


def test_a_job_the_scheduler_started_says_so(page: Any) -> None:
    card = page.locator(f'article.job[data-job-id="{SCHEDULED_JOB}"]')
    expect(card).to_contain_text("scheduled")
