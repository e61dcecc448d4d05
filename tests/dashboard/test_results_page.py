"""The dashboard's Results page and report page in a real browser (Debian's chromium, Playwright)
against a real core with a SQL history: date range, hash and location filters, keyset pages, the
export button, a job's report and two jobs compared."""

from __future__ import annotations

import csv
import io
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from dsx_connect.db.engine import make_engine
from dsx_connect.results.history import SqlHistory
from dsx_connect.state.jobs import JobStore
from tests.dashboard.conftest import CHROMIUM
from tests.dsx_connect.results.conftest import make_event
from tests.support.procs import core_alone

CHROMIUM_ARGS = ["--headless=new", "--no-sandbox", "--disable-gpu", "--no-first-run"]

sync_api = pytest.importorskip("playwright.sync_api", reason="the playwright package is not installed")
expect = sync_api.expect

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(180)]

MALICIOUS = (3, 17, 40)


@pytest.fixture(scope="module")
def core_url(tmp_path_factory: pytest.TempPathFactory, logs_dir: Path) -> Iterator[str]:
    tmp = tmp_path_factory.mktemp("results-page")
    db_url = f"sqlite:///{tmp / 'results.db'}"
    settings = {"DSXCONNECT_RESULTS_DB": db_url, "DSXCONNECT_AUTH__ENABLED": "false"}
    with core_alone(tmp, logs_dir, "results-page", **settings) as (core, redis_url):
        engine = make_engine(db_url)
        SqlHistory(engine).record(
            [
                make_event(
                    n,
                    job="job-one" if n < 30 else "job-two",
                    verdict="Malicious" if n in MALICIOUS else "Benign",
                    reason="EICAR-Test-File" if n in MALICIOUS else "",
                    location=f"{'finance' if n % 4 == 0 else 'hr'}/doc{n}.pdf",
                )
                for n in range(60)
            ]
        )
        engine.dispose()
        import redis

        jobs = JobStore(redis.Redis.from_url(redis_url, decode_responses=True))
        for job_id in ("job-one", "job-two"):
            jobs.create("c1", "fs", job_id=job_id)
        yield core


@pytest.fixture(scope="module")
def page(core_url: str) -> Iterator[Any]:
    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        context = browser.new_context(
            viewport={"width": 1280, "height": 900}, accept_downloads=True, timezone_id="UTC"
        )
        tab = context.new_page()
        tab.set_default_timeout(20_000)
        tab.goto(core_url + "/")
        tab.locator("#tab-results").click()
        yield tab
        context.close()
        browser.close()


def rows(page: Any) -> Any:
    return page.locator("#results-table tbody tr")


def test_hash_search_finds_one_file(page: Any) -> None:
    form = page.locator("#results-filters")
    form.locator('input[name="sha256"]').fill(f"{17:064x}")
    form.get_by_role("button", name="Apply").click()
    expect(rows(page)).to_have_count(1)
    expect(rows(page).first).to_contain_text("hr/doc17.pdf")
    expect(page.locator("#results-backend")).to_have_text("store: sqlite")


def test_location_prefix_and_keyset_pages(page: Any) -> None:
    form = page.locator("#results-filters")
    form.get_by_role("button", name="Clear").click()
    form.locator('input[name="location_prefix"]').fill("finance/")
    form.get_by_role("button", name="Apply").click()  # 15 of the 60 results, newest first
    expect(rows(page)).to_have_count(15)
    expect(rows(page).first).to_contain_text("finance/doc56.pdf")
    expect(page.locator("#results-next")).to_be_disabled()
    form.get_by_role("button", name="Clear").click()
    expect(rows(page)).to_have_count(25)
    page.locator("#results-next").click()
    expect(page.locator("#results-range")).to_contain_text("26–50")
    expect(rows(page).first).to_contain_text("doc34.pdf")
    page.locator("#results-next").click()
    expect(rows(page)).to_have_count(10)
    page.locator("#results-prev").click()
    expect(rows(page).first).to_contain_text("doc34.pdf")


def test_date_range(page: Any) -> None:
    form = page.locator("#results-filters")
    form.get_by_role("button", name="Clear").click()
    form.locator('input[name="since"]').fill("2026-12-01T10:00:10")
    form.locator('input[name="until"]').fill("2026-12-01T10:00:20")
    form.get_by_role("button", name="Apply").click()
    expect(rows(page)).to_have_count(10)
    expect(rows(page).first).to_contain_text("doc19.pdf")
    expect(rows(page).last).to_contain_text("doc10.pdf")


def test_the_export_button_downloads_the_search(page: Any) -> None:
    form = page.locator("#results-filters")
    form.get_by_role("button", name="Clear").click()
    form.locator('select[name="verdict"]').select_option("Malicious")
    expect(rows(page)).to_have_count(3)
    with page.expect_download() as info:
        page.locator("#results-export-csv").click()
    text = Path(info.value.path()).read_text()
    exported = list(csv.DictReader(io.StringIO(text)))
    assert [r["location"] for r in exported] == ["finance/doc40.pdf", "hr/doc17.pdf", "hr/doc3.pdf"]
    assert {r["threat_name"] for r in exported} == {"EICAR-Test-File"}


def test_a_job_report_and_two_jobs_compared(page: Any, core_url: str) -> None:
    form = page.locator("#results-filters")
    form.get_by_role("button", name="Clear").click()
    form.locator('input[name="job"]').fill("job-one")
    form.get_by_role("button", name="Apply").click()
    page.locator("#results-report").click()
    expect(page.locator("#report-title")).to_have_text("Job report: job-one")
    malicious = page.locator("table", has_text="Malicious files").locator("tbody tr")
    expect(malicious).to_have_count(2)
    expect(malicious.first).to_contain_text("EICAR-Test-File")
    page.locator('#report-form input[name="jobs"]').fill("job-one, job-two")
    page.locator("#report-form").get_by_role("button", name="Show").click()
    expect(page.locator("#report-title")).to_have_text("2 jobs compared")
    expect(page.locator("#report tbody tr")).to_have_count(2)
    with page.expect_download() as info:
        page.get_by_role("link", name="Download CSV").click()
    assert Path(info.value.path()).read_text().count("\n") == 3
