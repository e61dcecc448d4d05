"""Migrations shipped in the package: an empty database, one made by the previous revision, and
replicas starting at once."""

from __future__ import annotations

import json
import threading
from pathlib import Path

import pytest
from sqlalchemy import text

from dsx_connect.db.engine import make_engine
from dsx_connect.db.migrate import current_revision, head_revision, upgrade
from tests.dsx_connect.results.conftest import make_event, sql_url
from tests.support.postgres import create_database

pytestmark = pytest.mark.integration

KINDS = pytest.mark.parametrize("kind", ["sqlite", "postgresql"])


def url_for(kind: str, tmp_path: Path, request: pytest.FixtureRequest) -> str:
    return sql_url(kind, tmp_path, lambda: request.getfixturevalue("postgres_url"))


@KINDS
def test_an_empty_database_is_upgraded_to_head(
    kind: str, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    url = url_for(kind, tmp_path, request)
    assert current_revision(url) is None
    assert upgrade(url) == head_revision() == "0005"
    engine = make_engine(url)
    catalog = (  # SQLAlchemy's inspector leaves expression indexes out on SQLite
        "SELECT name FROM sqlite_master WHERE type = 'index' AND tbl_name = 'scan_results'"
        if kind == "sqlite"
        else "SELECT indexname FROM pg_indexes WHERE tablename = 'scan_results'"
    )
    with engine.connect() as conn:
        indexes = set(conn.execute(text(catalog)).scalars())
    engine.dispose()
    assert {
        "ix_scan_results_verdict",
        "ix_scan_results_sha256",
        "ix_scan_results_threat",
        "ix_scan_results_job_verdict",
        "ix_scan_results_location_head",
    } <= indexes
    assert "ix_scan_results_location" not in indexes  # its entries held whole locations (0005)
    assert upgrade(url) == "0005"  # again: nothing to do


@KINDS
def test_a_database_of_the_previous_revision_keeps_its_rows(
    kind: str, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    url = url_for(kind, tmp_path, request)
    assert upgrade(url, "0001") == "0001"
    engine = make_engine(url)
    with engine.begin() as conn:
        for n, verdict, reason in ((1, "Benign", ""), (2, "Malicious", "EICAR-Test-File")):
            event = make_event(n, verdict=verdict, reason=reason)
            conn.execute(
                text(
                    "INSERT INTO scan_results (scan_request_id, ts_us, job_id, connector_uuid, connector_name,"
                    " location, verdict, sha256, size_bytes, action, action_status, failed, event) VALUES"
                    " (:id, :ts, 'j1', 'c1', 'fs', :loc, :verdict, NULL, 1, '', 'nothing', false, :event)"
                ),
                {"id": f"r{n}", "ts": n, "loc": f"f{n}", "verdict": verdict, "event": json.dumps(event)},
            )
    assert upgrade(url) == "0005"
    with engine.connect() as conn:
        names = dict(conn.execute(text("SELECT scan_request_id, threat_name FROM scan_results")).all())
    engine.dispose()
    assert names == {"r1": None, "r2": "EICAR-Test-File"}  # filled in from the stored events


def test_replicas_starting_at_once_upgrade_once(request: pytest.FixtureRequest) -> None:
    url = create_database(request.getfixturevalue("postgres_url"))
    outcomes: list[object] = []

    def start() -> None:
        try:
            outcomes.append(upgrade(url))
        except Exception as exc:  # a lost race would surface as a duplicate-table error
            outcomes.append(exc)

    threads = [threading.Thread(target=start) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert outcomes == ["0005"] * 4


def test_inv_db_upgrade_migrates_the_configured_database(tmp_path: Path) -> None:
    import subprocess
    import sys

    from tests.support.procs import REPO_ROOT, base_env

    url = f"sqlite:///{tmp_path / 'prod.db'}"
    inv = [sys.executable, "-m", "invoke", "db-upgrade"]
    done = subprocess.run(
        inv, env=base_env(DSXCONNECT_RESULTS_DB=url), cwd=REPO_ROOT, capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr
    assert "empty -> 0005" in done.stdout and current_revision(url) == "0005"
    refused = subprocess.run(
        [*inv, "--url", "redis"], env=base_env(), cwd=REPO_ROOT, capture_output=True, text=True
    )
    assert refused.returncode != 0 and "no SQL history" in refused.stderr
