"""The results routes against a real core process: search with filters and cursors, the 1.x list,
exports, job reports and comparisons, with the SQL history (SQLite) and with Redis alone."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import redis

from dsx_connect.db.engine import make_engine
from dsx_connect.results.history import SqlHistory
from dsx_connect.results.settings import ResultsDbSettings
from dsx_connect.state.jobs import JobStore
from dsx_connect.state.results import ResultStore
from tests.dsx_connect.api.test_openapi_typed import is_typed
from tests.dsx_connect.conftest import API
from tests.dsx_connect.results.conftest import make_event
from tests.support.postgres import create_database
from tests.support.procs import core_alone

pytestmark = pytest.mark.integration

MALICIOUS = {2, 7, 11}


def seed_events() -> list[dict[str, object]]:
    events = []
    for n in range(30):
        verdict = "Malicious" if n in MALICIOUS else "Benign"
        error = None
        if n == 20:
            verdict, error = "Not Scanned", {"kind": "exhausted", "message": "scanner unreachable"}
        events.append(
            make_event(
                n,
                job="jobA" if n < 20 else "jobB",
                verdict=verdict,
                reason="EICAR-Test-File" if n in MALICIOUS else "",
                location=f"share/{'in' if n % 2 else 'out'}/f{n}.txt",
                error=error,
            )
        )
    return events


@pytest.fixture(scope="module", params=["sqlite", "postgresql", "redis"])
def api(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory, logs_dir: Path
) -> Iterator[httpx.Client]:
    tmp = tmp_path_factory.mktemp(f"results-api-{request.param}")
    db_url = {
        "sqlite": f"sqlite:///{tmp / 'results.db'}",
        "postgresql": create_database(request.getfixturevalue("postgres_url"))
        if request.param == "postgresql"
        else "",
        "redis": "redis",
    }[request.param]
    settings = {"DSXCONNECT_RESULTS_DB": db_url, "DSXCONNECT_AUTH__ENABLED": "false"}
    with core_alone(tmp, logs_dir, "results-core", **settings) as (core, url):  # migrated by now
        conn = redis.Redis.from_url(url, decode_responses=True)
        try:
            events = seed_events()
            if request.param != "redis":
                engine = make_engine(ResultsDbSettings(url=db_url).sql_url)
                SqlHistory(engine).record(events)
                engine.dispose()
            else:
                ResultStore(conn, retain=1000).store_many(events)
            jobs = JobStore(conn)
            for job_id in ("jobA", "jobB"):
                jobs.create("c1", "fs", job_id=job_id)
            with httpx.Client(base_url=f"{core}{API}", timeout=10) as client:
                yield client
        finally:
            conn.close()


def ids(items: list[dict[str, object]]) -> list[str]:
    return [str(i["scan_request_id"]) for i in items]


def test_filters_and_cursor_pages(api: httpx.Client) -> None:
    first = api.get("/scan/results", params={"location_prefix": "share/in/", "limit": 4}).json()
    assert ids(first["items"]) == ["r29", "r27", "r25", "r23"] and first["next_cursor"]
    second = api.get(
        "/scan/results", params={"location_prefix": "share/in/", "limit": 4, "cursor": first["next_cursor"]}
    ).json()
    assert ids(second["items"]) == ["r21", "r19", "r17", "r15"]
    assert ids(api.get("/scan/results", params={"sha256": f"{7:064x}"}).json()["items"]) == ["r7"]
    threat = api.get("/scan/results", params={"threat": "EICAR-Test-File", "job": "jobA"}).json()
    assert ids(threat["items"]) == ["r11", "r7", "r2"]
    window = api.get(
        "/scan/results", params={"since": "2026-12-01T10:00:05Z", "until": "2026-12-01T10:00:08Z"}
    ).json()
    assert ids(window["items"]) == ["r7", "r6", "r5"]


def test_the_1x_shape_a_plain_list_by_job_id(api: httpx.Client) -> None:
    answer = api.get("/scan/results", params={"job_id": "jobB", "limit": 100}).json()
    assert isinstance(answer, list) and len(answer) == 10
    assert {item["job_id"] for item in answer} == {"jobB"}
    assert isinstance(api.get("/scan/results", params={"shape": "list", "limit": 2}).json(), list)


@pytest.mark.parametrize(
    ("params", "says"),
    [
        ({"cursor": "abc"}, "cursor"),
        ({"sha256": "xyz"}, "sha256"),
        ({"verdict": "Evil"}, "verdict"),
        ({"since": "2026-12-02T00:00:00Z", "until": "2026-12-01T00:00:00Z"}, "until"),
        ({"job": "a", "job_id": "b"}, "job_id"),
        ({"location_prefix": "a\x00b"}, "NUL"),
        ({"cursor": "99999999999999999999_1"}, "cursor"),
        ({"cursor": "9999999999999999999_1"}, "cursor"),
    ],
)
def test_bad_searches_get_a_4xx_naming_the_problem(
    api: httpx.Client, params: dict[str, str], says: str
) -> None:
    response = api.get("/scan/results", params=params)
    assert response.status_code == 422 and says in response.text


@pytest.mark.parametrize("path", ["/scan/results", "/scan/results/export"])
def test_a_time_with_a_zone_and_one_without_are_compared_as_utc(api: httpx.Client, path: str) -> None:
    """They were compared before the one without a zone was read as UTC: 500 (naive vs aware)."""
    wrong_way = api.get(path, params={"since": "2026-12-02T00:00:00", "until": "2026-12-01T00:00:00Z"})
    assert wrong_way.status_code == 422 and "until must be later than since" in wrong_way.text
    right_way = api.get(path, params={"since": "2026-12-01T00:00:00Z", "until": "2026-12-02T00:00:00"})
    assert right_way.status_code == 200, right_way.text


def test_a_result_id_with_a_nul_is_refused_not_a_history_outage(api: httpx.Client) -> None:
    """PostgreSQL refuses NUL in text: the lookup's error was answered 503 'history unavailable'."""
    response = api.get("/scan/results/abc%00def")
    assert response.status_code == 422, response.text


def test_exports_stream_every_matching_result(api: httpx.Client) -> None:
    with api.stream("GET", "/scan/results/export", params={"format": "csv", "job": "jobA"}) as response:
        assert response.status_code == 200 and response.headers["content-type"].startswith("text/csv")
        assert "attachment" in response.headers["content-disposition"]
        text = "".join(response.iter_text())
    rows = list(csv.DictReader(io.StringIO(text)))
    assert len(rows) == 20 and rows[0]["scan_request_id"] == "r19"
    assert {r["threat_name"] for r in rows if r["verdict"] == "Malicious"} == {"EICAR-Test-File"}
    jsonl = api.get("/scan/results/export", params={"format": "jsonl", "verdict": "Malicious"})
    lines = [json.loads(line) for line in jsonl.text.splitlines()]
    assert ids(lines) == ["r11", "r7", "r2"]


def test_job_report_as_json_and_csv(api: httpx.Client) -> None:
    report = api.get("/scan/reports/jobs/jobB").json()
    assert report["job_id"] == "jobB"
    assert [f["error"] for f in report["failures"]] == ["scanner unreachable"]
    malicious = api.get("/scan/reports/jobs/jobA").json()["malicious"]
    assert [m["scan_request_id"] for m in malicious] == ["r11", "r7", "r2"]
    assert malicious[0]["threat_name"] == "EICAR-Test-File" and malicious[0]["action"] == "move"
    text = api.get("/scan/reports/jobs/jobA", params={"format": "csv"}).text
    assert "job_id,jobA" in text and "malicious,r11" in text
    assert api.get("/scan/reports/jobs/nope").status_code == 404
    assert api.get("/scan/reports/jobs/a%00b").status_code == 422


def test_jobs_compared(api: httpx.Client) -> None:
    answer = api.get("/scan/reports/compare", params=[("job", "jobA"), ("job", "jobB")]).json()
    assert [row["job_id"] for row in answer["jobs"]] == ["jobA", "jobB"]
    text = api.get("/scan/reports/compare", params=[("job", "jobA"), ("job", "jobB"), ("format", "csv")]).text
    header = text.splitlines()[0].split(",")
    assert header[:2] == ["job_id", "connector_name"] and len(text.splitlines()) == 3
    assert api.get("/scan/reports/compare", params={"job": "jobA"}).status_code == 422
    assert api.get("/scan/reports/compare", params=[("job", "jobA"), ("job", "zzz")]).status_code == 404


def test_jobs_serve_the_ui_notes_names_too(api: httpx.Client) -> None:
    job = api.get("/scan/jobs/jobA").json()
    assert job["enqueued_count"] == job["enqueued"] and job["processed_count"] == job["processed"]
    assert job["expected_total"] == job["enqueued_total"] and job["finished_at"] == job["finished"]
    listed = api.get("/scan/jobs").json()["items"]
    assert {"enqueued_count", "processed_count", "expected_total", "finished_at"} <= listed[0].keys()


def test_the_openapi_document_describes_these_answers(api: httpx.Client) -> None:
    document = api.get("/openapi.json").json()
    paths = (
        "/scan/results",
        "/scan/results/{request_id}",
        "/scan/stats",
        "/scan/jobs",
        "/scan/jobs/{job_id}",
        "/scan/jobs/{job_id}/raw",
        "/scan/reports/jobs/{job_id}",
        "/scan/reports/compare",
    )
    for path in paths:
        content = document["paths"][f"{API}{path}"]["get"]["responses"]["200"]["content"]["application/json"]
        assert is_typed(content["schema"], document), path


def test_an_unmigrated_history_answers_503_saying_what_to_do(
    tmp_path_factory: pytest.TempPathFactory, logs_dir: Path
) -> None:
    tmp = tmp_path_factory.mktemp("unmigrated")
    settings = {
        "DSXCONNECT_RESULTS_DB": f"sqlite:///{tmp / 'results.db'}",
        "DSXCONNECT_RESULTS_DB__MIGRATE_ON_START": "false",
        "DSXCONNECT_AUTH__ENABLED": "false",
    }
    with (
        core_alone(tmp, logs_dir, "unmigrated", **settings) as (core, _),
        httpx.Client(base_url=f"{core}{API}", timeout=10) as client,
    ):
        for path in ("/scan/results", "/scan/results/export", "/scan/reports/jobs/j1"):
            answer = client.get(path)
            assert answer.status_code == 503 and "inv db-upgrade" in answer.text, path
