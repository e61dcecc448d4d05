"""The operator dashboard in a real browser (Debian's chromium, driven by Playwright) against the real
local stack: connectors, a full scan to 100 %, pause / resume / cancel from the buttons, results by
filter, stats, dead letters, a narrow screen, and sign-in when auth is on.

The tests run in file order on one page, as an operator would. Screenshots of every view go to
``test-artifacts/dashboard/``. Scans that must be caught while they wait (pause, cancel) run with
the scan worker frozen (SIGSTOP), so that nothing is scanned before the button is pressed.
"""

from __future__ import annotations

import re
import secrets
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from devstack.samples import sample_files, write_sample
from dsx_connect.version import __version__
from tests.dashboard.conftest import CHROMIUM
from tests.support.local_stack import StackRun, write_files
from tests.support.procs import (
    REPO_ROOT,
    ServiceProcess,
    base_env,
    free_port,
    redis_server,
    uvicorn_argv,
    wait_for,
)

CHROMIUM_ARGS = [
    "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
    "--disable-component-update", "--no-first-run", "--disable-sync",
]  # fmt: skip
ARTIFACTS = REPO_ROOT / "test-artifacts" / "dashboard"
BULK = 588  # + the 12 files of the stack's sample folder: 600 files

sync_api = pytest.importorskip("playwright.sync_api", reason="the playwright package is not installed")
expect = sync_api.expect
Page = sync_api.Page

pytestmark = [pytest.mark.e2e, pytest.mark.slow, pytest.mark.timeout(600)]


@pytest.fixture(scope="module")
def local(tmp_path_factory: pytest.TempPathFactory) -> Iterator[StackRun]:
    run = StackRun(
        tmp_path_factory.mktemp("dashboard") / "run",
        env={"DSX_CONNECT_VERSION": __version__},  # as a release image sets it: the badge shows
        connector_env={"DSXCONNECTOR_MONITOR": "false"},
    )
    write_sample(run.cfg.sample_dir)
    write_files(run.cfg.sample_dir, BULK)
    try:
        yield run.start()
    finally:
        run.stop()


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    with sync_api.sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield chromium
        chromium.close()


@pytest.fixture(scope="module")
def requests_seen() -> list[str]:
    return []


@pytest.fixture(scope="module")
def policy_violations() -> list[str]:
    """What the browser refused under the dashboard's Content-Security-Policy, over every test."""
    return []


@pytest.fixture(scope="module")
def page(
    browser: Any, local: StackRun, requests_seen: list[str], policy_violations: list[str]
) -> Iterator[Page]:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    context = browser.new_context(
        viewport={"width": 1280, "height": 800}, permissions=["clipboard-read", "clipboard-write"]
    )
    context.on("request", lambda request: requests_seen.append(request.url))
    context.on(
        "console",
        lambda message: (
            policy_violations.append(message.text) if "Content Security Policy" in message.text else None
        ),
    )
    tab = context.new_page()
    tab.set_default_timeout(30_000)
    tab.goto(local.cfg.core_url + "/")
    yield tab
    context.close()


def shot(page: Page, name: str) -> None:
    page.screenshot(path=str(ARTIFACTS / f"{name}.png"), full_page=True)


def start_scan_from_the_dashboard(
    page: Page, expected_files: int | None = None, *, force: bool = False
) -> str:
    """Open the connector's full-scan dialog, check the estimate, start; returns the new job's id.

    ``force`` ticks "scan every file again": without it, files an earlier scan saw unchanged are
    served from the scan cache at intake, with no scan worker involved."""
    page.locator("#tab-scans").click()
    known = page.locator(".job").evaluate_all("cards => cards.map(c => c.dataset.jobId)")
    page.get_by_role("button", name="Full scan of filesystem-connector").click()
    estimate = page.locator("#scan-estimate")
    expect(estimate).to_have_attribute("data-state", "ready")
    if expected_files is not None:
        expect(estimate).to_contain_text(f"{expected_files} files")
    expect(page.locator("#scan-force")).not_to_be_checked()
    if force:
        page.get_by_label("Read and scan every file again").check()
    page.locator("#scan-start").click()
    expect(page.locator("#scan-dialog")).to_be_hidden()
    page.wait_for_function(
        "known => document.activeElement?.dataset?.jobId && !known.includes(document.activeElement.dataset.jobId)",
        arg=known,
    )
    return str(page.evaluate("document.activeElement.dataset.jobId"))


def card(page: Page, job_id: str) -> Any:
    return page.locator(f'.job[data-job-id="{job_id}"]')


def files_in(folder: Path) -> int:
    return sum(1 for p in folder.rglob("*") if p.is_file())


def test_the_dashboard_shows_the_connector_live_and_the_version(page: Page, local: StackRun) -> None:
    expect(page.locator("#version")).to_have_text(f"v{__version__}")
    row = page.locator("#connectors-table tbody tr", has_text="filesystem-connector")
    expect(row).to_contain_text(str(local.cfg.sample_dir))
    # a long asset path may break after each separator (/ \\ _ . -), mid-word only where a part alone is too long
    asset = row.locator('td[data-label="Asset"]')
    path = str(local.cfg.sample_dir)
    expect(asset.locator("wbr")).to_have_count(sum(c in "/\\_.-" for c in path[:-1]))
    expect(asset).to_have_text(path)
    # retried: the live table may re-render the row between finding the cell and reading its style
    expect(asset).to_have_css("overflow-wrap", "anywhere")
    expect(row.locator('td[data-label="Health"]')).to_contain_text("healthy")
    expect(row.locator('td[data-label="Version"]')).not_to_have_text("–")
    expect(page.locator("#live")).to_have_attribute("data-state", "open")
    shot(page, "01-scans")


def test_a_full_scan_from_the_dashboard_shows_its_estimate_and_reaches_100_percent(
    page: Page, local: StackRun
) -> None:
    total = files_in(local.cfg.sample_dir)
    job_id = start_scan_from_the_dashboard(page, expected_files=total)
    job = card(page, job_id)

    expect(job.get_by_role("progressbar")).to_have_attribute("aria-valuenow", "100", timeout=120_000)
    expect(job).to_have_attribute("data-status", "completed")
    expect(job.locator(".progress-text")).to_contain_text(f"{total} / {total} files scanned")
    expect(job.locator(".verdicts")).to_contain_text("Malicious 2")
    expect(job.locator(".complete")).to_have_text(
        re.compile(rf"^Scan complete: {total} files in (<1s|\d+s|\d+m \d+s), 2 malicious$")
    )
    shot(page, "02-full-scan-completed")
    assert local.job(job_id)["processed"] == total
    job.get_by_role("button", name=f"Copy job id {job_id}").click()
    assert page.evaluate("navigator.clipboard.readText()") == job_id


def list_reads(urls: list[str]) -> list[str]:
    """The reads of the job list (``GET /scan/jobs?…``), not of one job (``/scan/jobs/{id}``)."""
    return [url for url in urls if re.search(r"/dsx-connect/api/v1/scan/jobs(\?|$)", url)]


def test_the_jobs_page_follows_a_scan_over_sse_alone_and_says_scan_complete(
    page: Page, local: StackRun, requests_seen: list[str]
) -> None:
    page.reload()
    expect(page.locator("#live")).to_have_attribute("data-state", "open")
    expect(page.locator("#jobs .job").first).to_be_visible()  # the first load's snapshot is in
    assert list_reads(requests_seen), "the first load reads the job list once"
    first_load = len(requests_seen)

    job_id = start_scan_from_the_dashboard(page)
    job = card(page, job_id)
    expect(job).to_have_attribute("data-status", "completed", timeout=120_000)
    done = local.job(job_id)
    malicious = done["verdicts"].get("Malicious", 0)
    expect(job.locator(".complete")).to_have_text(
        re.compile(
            rf"^Scan complete: {done['processed']} files in (<1s|\d+s|\d+m \d+s), {malicious} malicious$"
        )
    )
    expect(page.locator("#live")).to_have_attribute("data-state", "open")
    assert list_reads(requests_seen[first_load:]) == [], "the page read the job list again while SSE was up"


def test_after_a_reconnect_the_jobs_page_reads_the_list_once(
    page: Page, local: StackRun, requests_seen: list[str]
) -> None:
    page.locator("#tab-scans").click()
    expect(page.locator("#live")).to_have_attribute("data-state", "open")
    before = len(requests_seen)
    local.kill(["core"])  # every stream drops; EventSource reconnects by itself
    expect(page.locator("#live")).to_have_attribute("data-state", "error")
    local.restart(["core"])
    expect(page.locator("#live")).to_have_attribute("data-state", "open", timeout=30_000)
    wait_for(lambda: list_reads(requests_seen[before:]), timeout=15, what="the resync after the reconnect")
    page.wait_for_timeout(1000)  # nothing more follows
    reads = list_reads(requests_seen[before:])
    assert len(reads) == 2, reads  # one snapshot: the active jobs and the newest others


def test_jobs_are_labelled_by_kind_and_a_monitor_job_shows_no_percentage(page: Page, local: StackRun) -> None:
    connector = local.connector()
    sample = sample_files()[0].path
    answer = local.api.post(
        "/scan/request", json={"connector": connector, "location": sample, "metainfo": sample}
    )
    assert answer.status_code == 202, answer.text  # a change event: it joins the connector's monitor job
    page.locator("#tab-scans").click()
    monitor = page.locator('.job[data-kind="monitor"]').first
    expect(monitor.locator("h3")).to_have_text("filesystem-connector · monitor", timeout=30_000)
    expect(monitor.locator(".progress-text")).to_have_text(re.compile(r"^[1-9][0-9,]* files? scanned$"))
    expect(monitor.locator(".bar")).to_be_hidden()  # a rolling job has no total to measure against
    expect(page.locator('.job[data-kind="full_scan"] h3').first).to_contain_text("· full scan")


def test_the_eta_is_never_0s_midway(page: Page) -> None:
    eta = page.evaluate(
        """async () => {
        const { etaText } = await import("/js/jobs.js");
        const job = { status: "running", throughput_fps: 500, estimate: { count: null } };
        return [
          etaText({ ...job, enqueued_total: null }, 100, 41),  // still enumerating, no estimate: unknown
          etaText({ ...job, enqueued_total: 1000 }, 1000, 410),  // 590 left at 500/s
          etaText({ ...job, enqueued_total: 1000 }, 1000, 999),  // one left
          etaText({ ...job, enqueued_total: 1000, throughput_fps: 0 }, 1000, 410),
        ];
      }"""
    )
    assert eta == ["–", "1s", "<1s", "–"]


def test_the_job_list_filters_and_pages_with_running_jobs_first(page: Page, local: StackRun) -> None:
    page.locator("#tab-scans").click()
    uuid = local.connector()["uuid"]
    for _ in range(10):  # ten more full scans of one file each: more than a page
        assert local.api.post(f"/connectors/full_scan/{uuid}", params={"limit": 1}).status_code == 202
    expect(page.locator("#jobs-pager")).to_be_visible(timeout=30_000)
    expect(page.locator("#jobs-range")).to_contain_text("1–10 of")
    expect(page.locator("#jobs .job")).to_have_count(10)
    page.locator("#jobs-next").click()
    expect(page.locator("#jobs-range")).to_contain_text("11–")
    page.locator("#jobs-prev").click()
    form = page.locator("#jobs-filters")
    form.locator('select[name="kind"]').select_option("full_scan")
    expect(page.locator('#jobs .job:not([data-kind="full_scan"])')).to_have_count(0)
    form.locator('select[name="kind"]').select_option("")
    form.locator('select[name="status"]').select_option("running")
    expect(page.locator('#jobs .job:not([data-status="running"])')).to_have_count(0)
    expect(page.locator('#jobs .job[data-kind="monitor"]')).to_have_count(1)  # the rolling one runs
    form.locator('select[name="status"]').select_option("failed")
    expect(page.locator("#jobs-none-match")).to_be_visible()
    form.locator('select[name="status"]').select_option("")
    some = page.locator("#jobs .job").first.get_attribute("data-job-id")
    form.locator('input[name="text"]').fill(str(some))
    expect(page.locator("#jobs .job")).to_have_count(1)
    form.locator('input[name="text"]').fill("")
    statuses = page.locator("#jobs .job").evaluate_all("cards => cards.map(c => c.dataset.status)")
    active = [s in ("running", "paused") for s in statuses]
    assert active == sorted(active, reverse=True), statuses  # running and paused ones come first
    shot(page, "02b-job-list")


def test_pause_holds_the_job_across_a_reload_and_resume_finishes_it(page: Page, local: StackRun) -> None:
    scan_log = local.cfg.log_dir / "worker-scan.log"
    with local.frozen("worker-scan"):  # nothing is scanned until the job is paused
        job_id = start_scan_from_the_dashboard(page, force=True)  # not served from the scan cache
        job = card(page, job_id)
        expect(job).to_have_attribute("data-status", "running")
        job.get_by_role("button", name="Pause").click()
        expect(job).to_have_attribute("data-status", "paused")
        expect(job.locator(".note[role=status]")).to_have_text("job paused")
        held_before = scan_log.read_text(errors="replace").count('"scanned 0 of ')

    # the worker now gets the job's batches and holds them, scanning none
    wait_for(lambda: scan_log.read_text(errors="replace").count('"scanned 0 of ') > held_before, timeout=30,
             what="the scan worker to hold the paused job's items")  # fmt: skip
    assert local.job(job_id)["processed"] == 0
    page.reload()  # the page rehydrates the paused job
    job = card(page, job_id)
    expect(job).to_have_attribute("data-status", "paused")
    expect(job.get_by_role("button", name="Resume")).to_be_enabled()
    expect(job.get_by_role("button", name="Pause")).to_be_disabled()
    shot(page, "03-job-paused")

    job.get_by_role("button", name="Resume").click()

    expect(job.get_by_role("progressbar")).to_have_attribute("aria-valuenow", "100", timeout=120_000)
    expect(job).to_have_attribute("data-status", "completed")
    done = local.job(job_id)
    assert done["processed"] == done["enqueued_total"] == files_in(local.cfg.sample_dir)


def test_cancel_from_the_button_skips_what_is_not_yet_scanned(page: Page, local: StackRun) -> None:
    with local.frozen("worker-scan"):
        job_id = start_scan_from_the_dashboard(page, force=True)
        job = card(page, job_id)
        total = local.wait_job(job_id, lambda j: j["enqueue_done"], what="the enumeration to end")[
            "enqueued_total"
        ]
        job.get_by_role("button", name="Cancel").click()
        expect(job).to_have_attribute("data-status", "cancelled")
        expect(job.locator(".note[role=status]")).to_contain_text(
            f"0 items scanned, 0 skipped so far; {total} not yet scanned will be skipped"
        )
        expect(job.locator(".numbers")).to_contain_text(f"{total} not yet reached (will be skipped)")

    expect(job.locator(".numbers")).to_contain_text(f"skipped {total}", timeout=60_000)
    expect(job.get_by_role("progressbar")).to_have_attribute("aria-valuenow", "100")
    shot(page, "04-job-cancelled")
    final = local.job(job_id)
    assert (final["status"], final["processed"], final["skipped"], final["not_yet_scanned"]) == (
        "cancelled",
        0,
        total,
        0,
    )


def test_the_malicious_file_is_found_in_the_results_by_filter(page: Page, local: StackRun) -> None:
    page.locator("#tab-results").click()
    page.locator('#results-filters select[name="verdict"]').select_option("Malicious")
    rows = page.locator("#results-table tbody tr")
    expect(rows).to_have_count(2)
    eicar = rows.filter(has_text="inbox/eicar.com")
    expect(eicar).to_contain_text("filesystem-connector")
    expect(eicar.locator('td[data-label="Action"]')).to_have_text("move: done")
    connector = local.connector()
    page.locator('#results-filters select[name="connector"]').select_option(connector["uuid"])
    expect(rows).to_have_count(2)
    shot(page, "05-results-malicious")

    eicar.get_by_role("button", name="inbox/eicar.com").click()

    detail = page.locator("#result-dialog")
    expect(detail).to_be_visible()
    expect(detail).to_contain_text("EICAR")
    expect(detail).to_contain_text("275a021bbfb6489e54d471899f7db9d1663fc695ec2fe2a2c4538aabf651fd0f")
    shot(page, "06-result-detail")
    page.keyboard.press("Escape")


def test_results_page_through_one_job(page: Page, local: StackRun) -> None:
    first_job = local.get("/scan/jobs", kind="full_scan", limit=50)["items"][-1]["job_id"]
    form = page.locator("#results-filters")
    form.get_by_role("button", name="Clear").click()
    form.locator('input[name="job"]').fill(first_job)
    form.get_by_role("button", name="Apply").click()
    expect(page.locator("#results-range")).to_have_text(f"1–25 of {files_in(local.cfg.sample_dir) + 2}")
    page.locator("#results-next").click()
    expect(page.locator("#results-range")).to_contain_text("26–50 of")
    expect(page.locator("#results-table tbody tr").first.locator('td[data-label="Job"]')).to_have_text(
        first_job[:8]
    )


def test_stats_show_verdict_totals_and_throughput_over_time(page: Page, local: StackRun) -> None:
    stats = local.get("/scan/stats")
    page.locator("#tab-stats").click()
    expect(page.locator('#stats-cards [data-stat="scanned"] dd')).to_have_text(f"{stats['total']:,}")
    expect(page.locator('#stats-cards [data-stat="malicious"] dd')).to_have_text("2")
    expect(page.locator("#verdict-chart svg rect")).to_have_count(len(stats["verdicts"]))
    expect(page.locator("#verdict-chart svg")).to_have_attribute("aria-label", f"Verdict totals: Benign {stats['verdicts']['Benign']}, Malicious 2, Unknown 0, Unsupported File Type 0, Not Scanned 0, Non Compliant 0")  # fmt: skip
    expect(page.locator("#throughput-chart svg path.line")).to_have_count(1)
    shot(page, "07-stats")


def test_the_throughput_curve_survives_a_reload(page: Page, local: StackRun) -> None:
    """The curve comes from the core's per-minute history: a reload with the browser's storage
    emptied draws the same files-per-minute counts."""
    scanned = sum(local.get("/scan/stats/history", minutes=60)["total"])
    assert scanned >= BULK  # the scans of this module, counted by the result step
    page.locator("#tab-stats").click()
    chart = page.locator("#throughput-chart")
    expect(chart).to_have_attribute("data-total", str(scanned))
    expect(chart.locator("svg path.line")).to_have_count(1)
    page.evaluate("() => { sessionStorage.clear(); localStorage.clear(); }")
    page.reload()
    expect(page.locator("#tab-stats")).to_have_attribute("aria-selected", "true")
    expect(chart).to_have_attribute("data-total", str(scanned))
    expect(chart.locator("svg path.line")).to_have_count(1)
    expect(page.locator("#throughput-summary")).to_contain_text(f"{scanned:,} results in this window")
    malicious = page.locator("#malicious-chart svg")
    expect(malicious).to_have_attribute(
        "aria-label", re.compile(r"^Malicious results over the last 60 minutes")
    )
    expect(malicious.locator("path.line")).to_have_count(1)


def test_the_dead_letter_panel_follows_the_api(page: Page, local: StackRun) -> None:
    answer = local.api.get("/dlq/stats")
    page.locator("#tab-dlq").click()
    if answer.status_code == 404:
        expect(page.locator('#dlq [data-state="unavailable"]')).to_be_visible()
    else:
        expect(page.locator('#dlq [data-state="available"]')).to_contain_text(
            f"{answer.json()['count']} dead letters"
        )
    shot(page, "08-dead-letters")


def test_the_dead_letter_panel_says_not_available_when_the_core_has_none(page: Page) -> None:
    page.route(
        "**/dlq/stats",
        lambda route: route.fulfill(status=404, json={"status": "error", "message": "Not Found"}),
    )
    try:
        page.reload()
        expect(page.locator('#dlq [data-state="unavailable"]')).to_contain_text(
            "not available in this core version"
        )
        shot(page, "09-dead-letters-unavailable")
    finally:
        page.unroute("**/dlq/stats")


def test_a_requeued_dead_letter_is_marked_and_offers_no_second_requeue(page: Page) -> None:
    letter = {
        "id": "r-requeued", "stage": "scan", "reason": "gave up after 3 attempts: connector unreachable",
        "attempts": 3, "job_id": "j1", "connector_uuid": "c1", "location": "share/requeued.txt",
        "failed_at": "2026-12-05T08:00:00.000Z", "payload": {}, "requeued_until": 4102444800.0,
    }  # fmt: skip
    stats = {"count": 1, "by_stage": {"scan": 1}, "oldest": letter["failed_at"], "newest": letter["failed_at"],
             "retain_s": 604800, "requeued": 1}  # fmt: skip
    page.route("**/dlq/stats", lambda route: route.fulfill(status=200, json=stats))
    page.route(
        "**/dlq/items*",
        lambda route: route.fulfill(
            status=200, json={"items": [letter], "total": 1, "limit": 50, "offset": 0}
        ),
    )
    try:
        page.reload()
        page.locator("#tab-dlq").click()
        expect(page.locator('#dlq [data-state="available"]')).to_contain_text("1 requeued, not finished yet")
        row = page.locator("#dlq tbody tr", has_text="share/requeued.txt")
        expect(row.locator('[data-state="requeued"]')).to_have_text("requeued")
        expect(row.get_by_role("button", name="Requeue share/requeued.txt")).to_have_count(0)
    finally:
        page.unroute("**/dlq/stats")
        page.unroute("**/dlq/items*")


def test_the_security_panel_mints_shows_once_and_revokes_a_scoped_token(page: Page, local: StackRun) -> None:
    page.locator("#tab-security").click()
    form = page.locator("#mint-token")
    form.get_by_label("Name or uuid").fill("dashboard-minted-connector")
    form.get_by_label("Label").fill("from the panel")
    form.get_by_role("button", name="Mint token").click()
    minted = page.locator("#minted-token code")
    expect(minted).to_contain_text("dsxe-")
    token = minted.inner_text()
    (listed,) = [t for t in local.api.get("/auth/enrollment-tokens").json() if t["label"] == "from the panel"]
    assert listed["connector_name"] == "dashboard-minted-connector"
    row = page.locator(f'#tokens-table tr[data-token="{listed["id"]}"]')
    expect(row).to_contain_text("name dashboard-minted-connector")
    assert token not in page.locator("#tokens-table").inner_text()  # shown once, never in the list
    shot(page, "11-security-tokens")
    page.once("dialog", lambda dialog: dialog.accept())
    row.get_by_role("button", name=f"Revoke {listed['id']}").click()
    expect(row).to_have_count(0)
    assert all(t["id"] != listed["id"] for t in local.api.get("/auth/enrollment-tokens").json())


def test_every_view_fits_a_narrow_screen(page: Page) -> None:
    page.set_viewport_size({"width": 390, "height": 844})
    try:
        for view in ("scans", "results", "stats", "dlq", "security"):
            page.locator(f"#tab-{view}").click()
            expect(page.locator(f"#view-{view}")).to_be_visible()
            overflow = page.evaluate("document.documentElement.scrollWidth - window.innerWidth")
            assert overflow <= 0, f"the {view} view is {overflow}px wider than the screen"
            shot(page, f"10-narrow-{view}")
    finally:
        page.set_viewport_size({"width": 1280, "height": 800})


def test_tabs_work_from_the_keyboard(page: Page) -> None:
    page.locator("#tab-scans").click()
    page.locator("#tab-scans").press("ArrowRight")
    expect(page.locator("#tab-results")).to_be_focused()
    expect(page.locator("#tab-results")).to_have_attribute("aria-selected", "true")
    expect(page.locator("#view-results")).to_be_visible()
    page.keyboard.press("End")
    expect(page.locator("#tab-security")).to_have_attribute("aria-selected", "true")


def test_nothing_is_loaded_from_outside_the_core(local: StackRun, requests_seen: list[str]) -> None:
    assert requests_seen
    outside = [
        url for url in requests_seen if not url.startswith((local.cfg.core_url + "/", "data:", "blob:"))
    ]
    assert outside == []


@pytest.fixture
def core_with_auth(tmp_path: Path, logs_dir: Path) -> Iterator[tuple[str, str]]:
    pytest.importorskip("dsx_connect.auth.api", reason="this core has no operator authentication")
    api_key = secrets.token_hex(16)
    with redis_server(tmp_path / "redis") as (url, _):
        port = free_port()
        env = base_env(
            DSXCONNECT_REDIS_URL=url, DSXCONNECT_AUTH__ENABLED="true", DSXCONNECT_AUTH__API_KEYS=api_key,
            DSXCONNECT_AUTH__ENROLLMENT_TOKENS=secrets.token_hex(16),
        )  # fmt: skip
        proc = ServiceProcess(
            f"dashboard-auth-core-{port}", uvicorn_argv("dsx_connect.app:app", port), env, logs_dir
        )
        try:
            proc.start().wait_healthy(f"http://127.0.0.1:{port}/healthz")
            yield f"http://127.0.0.1:{port}", api_key
        finally:
            proc.stop()


def test_with_auth_on_the_dashboard_asks_for_an_api_key_first(
    browser: Any, core_with_auth: tuple[str, str]
) -> None:
    url, api_key = core_with_auth
    assert httpx.get(f"{url}/dsx-connect/api/v1/scan/jobs").status_code == 401
    context = browser.new_context(viewport={"width": 1280, "height": 800})
    page = context.new_page()
    try:
        page.goto(url + "/")
        login = page.locator("#login-dialog")
        expect(login).to_be_visible()
        # a user name and a password field with their autocomplete hints: password managers store the key
        expect(login.locator('input[autocomplete="username"]')).to_have_value("operator")
        expect(login.locator('input[type="password"][autocomplete="current-password"]')).to_be_visible()
        page.get_by_label("API key").fill("not-the-key-at-all")
        page.get_by_role("button", name="Sign in").click()
        expect(page.locator("#login-error")).to_have_text("That API key is not valid.")
        page.get_by_label("API key").fill(api_key)
        page.get_by_role("button", name="Sign in").click()
        expect(login).to_be_hidden()
        expect(page.locator("#connectors-empty")).to_be_visible()
        expect(page.locator("#live")).to_have_attribute("data-state", "open")
        expect(page.get_by_role("button", name="Sign out")).to_be_visible()
        expect(page.locator("#version")).to_be_hidden()  # a dev build (no DSX_CONNECT_VERSION): no badge
        shot(page, "11-signed-in")
    finally:
        context.close()


def test_no_page_broke_the_content_security_policy(page: Page, policy_violations: list[str]) -> None:
    """Runs after the others (file order): every panel they opened worked under the strict policy."""
    page.reload()
    for tab in ("#tab-scans", "#tab-results", "#tab-stats", "#tab-dlq", "#tab-security"):
        page.locator(tab).click()
    page.goto(page.url.split("#")[0].rstrip("/") + "/report.html?job=none")
    assert policy_violations == []
