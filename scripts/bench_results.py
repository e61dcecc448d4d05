"""Benchmark of the results history (``inv bench --results-db sqlite|postgresql``), written as JSON.

  (a) throughput of a full scan through the whole local stack with the SQL history, against the
      same scan with Redis alone (runs alternate, Redis first, to spread the machine's drift);
  (b) insert rate of the history in batches (``SqlHistory.record``, the result step's call);
  (c) searches over ``--rows`` synthetic results generated in SQL (``generate_series`` on
      PostgreSQL, a recursive CTE on SQLite): each filter of ``GET /scan/results``, first page
      and the page after, median of ``--repeat`` runs.

PostgreSQL: ``--pg-url`` names a server; without it one is started from Debian's ``postgresql``
package for the run (``tests/support/postgres.py``).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager, nullcontext
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from sqlalchemy import Engine, text

from devstack.graph import components
from devstack.probes import wait_ready
from devstack.procs import read_records, spawn, stop
from devstack.scan import wait_for_connector
from devstack.settings import StackConfig
from scripts.bench import free_port, make_files, timed_full_scan

REPO_ROOT = Path(__file__).resolve().parents[1]
T0_US = 1_764_547_200_000_000  # 2025-12-01T00:00:00Z: synthetic results are one millisecond apart
SECONDARY_INDEXES = {
    "ix_scan_results_ts": "(ts_us, id)",
    "ix_scan_results_verdict": "(verdict, ts_us, id)",
    "ix_scan_results_connector": "(connector_uuid, ts_us, id)",
    "ix_scan_results_job": "(job_id, ts_us, id)",
    "ix_scan_results_job_verdict": "(job_id, verdict, ts_us, id)",
    "ix_scan_results_location_head": "(substr(location, 1, 600))",  # migration 0005
    "ix_scan_results_sha256": "(sha256, ts_us, id)",
    "ix_scan_results_threat": "(threat_name, ts_us, id)",
}


# ---- (a) full-scan throughput, SQL history against Redis alone --------------------------------


def scan_once(files_dir: Path, work: Path, results_db: str, concurrency: int) -> dict[str, Any]:
    """One stack on fresh ports scanning ``files_dir`` with ``DSXCONNECT_RESULTS_DB=results_db``."""
    cfg = StackConfig(
        run_dir=work, redis_port=free_port(), dsxa_port=free_port(), core_port=free_port(),
        fs_port=free_port(), scan_concurrency=concurrency, scan_timeout=3600,
    )  # fmt: skip
    for folder in (cfg.quarantine_dir, cfg.run_dir / "redis", cfg.log_dir):
        folder.mkdir(parents=True, exist_ok=True)
    cfg.sample_dir.parent.mkdir(parents=True, exist_ok=True)
    if cfg.sample_dir.exists():
        shutil.rmtree(cfg.sample_dir)
    cfg.sample_dir.symlink_to(files_dir, target_is_directory=True)
    os.environ["DSXCONNECT_RESULTS_DB"] = results_db
    try:
        order = 0
        for stage in components(cfg):
            started = []
            for comp in stage:
                if comp.name == "filesystem":
                    env = {**comp.env, "DSXCONNECTOR_MONITOR": "false", "DSXCONNECTOR_ITEM_ACTION": "nothing"}
                    comp = replace(comp, env=env)
                started.append((comp, spawn(cfg.run_dir, comp, order)))
                order += 1
            for comp, record in started:
                wait_ready(comp, record, cfg.start_timeout)
        result = timed_full_scan(cfg, wait_for_connector(cfg))
        return {k: result[k] for k in ("elapsed_s", "files_per_s")}
    finally:
        stop(read_records(cfg.run_dir), out=lambda _line: None)
        os.environ.pop("DSXCONNECT_RESULTS_DB", None)


def throughput(args: argparse.Namespace, sql_url: str, work: Path) -> dict[str, Any]:
    files_dir = work / "files"
    print(f"(a) generating {args.files} files of {args.min_kib}-{args.max_kib} KiB", flush=True)
    make_files(files_dir, args.files, args.min_kib, args.max_kib)
    runs: dict[str, list[float]] = {"redis": [], args.results_db: []}
    for n in range(args.rounds):
        for mode, url in (("redis", "redis"), (args.results_db, sql_url)):
            if mode != "redis" and url.startswith("sqlite"):
                url = f"sqlite:///{work / f'scan-{n}.db'}"
            print(f"(a) round {n + 1}: full scan, results in {mode}", flush=True)
            runs[mode].append(
                scan_once(files_dir, work / f"run-{mode}-{n}", url, args.scan_concurrency)["files_per_s"]
            )
    redis_fps = statistics.median(runs["redis"])
    sql_fps = statistics.median(runs[args.results_db])
    return {
        "files": args.files,
        "files_per_s": runs,
        "median_redis_fps": redis_fps,
        "median_sql_fps": sql_fps,
        "sql_to_redis": round(sql_fps / redis_fps, 3) if redis_fps else None,
    }


# ---- (b) insert rate --------------------------------------------------------------------------


def synthetic_event(n: int) -> dict[str, Any]:
    malicious = n % 1000 == 0
    return {
        "event_type": "scan_result",
        "schema_version": 1,
        "timestamp": datetime.fromtimestamp(T0_US / 1e6 + n / 1000, tz=UTC)
        .isoformat()
        .replace("+00:00", "Z"),
        "scan_request_id": f"ins{n}",
        "job_id": f"job{n % 200}",
        "connector": {"name": "filesystem-connector", "uuid": f"conn{n % 5}"},
        "location": f"share/d{n % 1000}/f{n}.bin",
        "metainfo": f"f{n}.bin",
        "verdict": "Malicious" if malicious else "Benign",
        "verdict_details": {
            "event_description": "File identified as malicious" if malicious else "File identified as benign",
            "reason": f"Threat-{n % 7}" if malicious else "",
            "threat_type": "VIRUS" if malicious else None,
        },
        "file_info": {"file_type": "Unknown", "size_in_bytes": n % 65536, "sha256": f"{n:064x}"},
        "action": {"requested": "nothing", "applied": False, "status": "nothing", "message": ""},
        "scanner": {"scan_guid": f"g{n}", "duration_us": 120, "engine_version": "1", "cached": False},
        "severity": 6,
        "error": None,
    }


def insert_rate(engine: Engine, count: int, batch: int, writers: int = 1) -> dict[str, Any]:
    """Batches recorded by ``writers`` threads at once (as several result worker processes do)."""
    from concurrent.futures import ThreadPoolExecutor

    from dsx_connect.results.history import SqlHistory

    history = SqlHistory(engine)
    batches = [
        [synthetic_event(n) for n in range(start, min(start + batch, count))]
        for start in range(0, count, batch)
    ]
    print(f"(b) inserting {count} results in batches of {batch}, {writers} writer(s)", flush=True)
    started = time.perf_counter()
    with ThreadPoolExecutor(max_workers=writers) as pool:
        list(pool.map(history.record, batches))
    elapsed = time.perf_counter() - started
    again = time.perf_counter()
    history.record(batches[0])  # a redelivered batch: nothing inserted twice
    return {
        "results": count,
        "batch": batch,
        "writers": writers,
        "elapsed_s": round(elapsed, 3),
        "results_per_s": round(count / elapsed),
        "redelivered_batch_ms": round((time.perf_counter() - again) * 1000, 1),
    }


# ---- (c) searches over many rows --------------------------------------------------------------

_PG_FILL = """
INSERT INTO scan_results (scan_request_id, ts_us, job_id, connector_uuid, connector_name, location,
  verdict, threat_name, sha256, size_bytes, action, action_status, failed, event)
SELECT 'syn' || g, :t0 + g * 1000, 'job' || (g % 200), 'conn' || (g % 5), 'filesystem-connector',
  'share/d' || (g % 1000) || '/f' || g || '.bin',
  CASE WHEN g % 1000 = 0 THEN 'Malicious' WHEN g % 97 = 0 THEN 'Not Scanned' ELSE 'Benign' END,
  CASE WHEN g % 1000 = 0 THEN 'Threat-' || (g % 7) END,
  md5(g::text) || md5((g + 1)::text), g % 65536, '', 'nothing', false,
  json_build_object('scan_request_id', 'syn' || g, 'job_id', 'job' || (g % 200),
    'location', 'share/d' || (g % 1000) || '/f' || g || '.bin', 'verdict', 'Benign',
    'connector', json_build_object('name', 'filesystem-connector', 'uuid', 'conn' || (g % 5)))::text
FROM generate_series(CAST(:lo AS bigint), CAST(:hi AS bigint)) AS g
"""
_SQLITE_FILL = """
WITH RECURSIVE s(g) AS (SELECT :lo UNION ALL SELECT g + 1 FROM s WHERE g < :hi)
INSERT INTO scan_results (scan_request_id, ts_us, job_id, connector_uuid, connector_name, location,
  verdict, threat_name, sha256, size_bytes, action, action_status, failed, event)
SELECT 'syn' || g, :t0 + g * 1000, 'job' || (g % 200), 'conn' || (g % 5), 'filesystem-connector',
  'share/d' || (g % 1000) || '/f' || g || '.bin',
  CASE WHEN g % 1000 = 0 THEN 'Malicious' WHEN g % 97 = 0 THEN 'Not Scanned' ELSE 'Benign' END,
  CASE WHEN g % 1000 = 0 THEN 'Threat-' || (g % 7) END,
  printf('%064x', g), g % 65536, '', 'nothing', 0,
  json_object('scan_request_id', 'syn' || g, 'job_id', 'job' || (g % 200),
    'location', 'share/d' || (g % 1000) || '/f' || g || '.bin', 'verdict', 'Benign',
    'connector', json_object('name', 'filesystem-connector', 'uuid', 'conn' || (g % 5)))
FROM s
"""


def fill(engine: Engine, rows: int) -> float:
    """``rows`` synthetic results made by the database itself; indexes rebuilt after. Returns seconds."""
    started = time.perf_counter()
    postgres = engine.dialect.name == "postgresql"
    with engine.begin() as conn:
        for name in SECONDARY_INDEXES:
            conn.execute(text(f"DROP INDEX IF EXISTS {name}"))
    step = 1_000_000
    for lo in range(1, rows + 1, step):
        hi = min(lo + step - 1, rows)
        with engine.begin() as conn:
            conn.execute(text(_PG_FILL if postgres else _SQLITE_FILL), {"lo": lo, "hi": hi, "t0": T0_US})
        print(f"(c) {hi} rows", flush=True)
    with engine.begin() as conn:
        if postgres:
            conn.execute(text("SET maintenance_work_mem = '512MB'"))
        for name, columns in SECONDARY_INDEXES.items():
            conn.execute(text(f"CREATE INDEX {name} ON scan_results {columns}"))
        conn.execute(text("ANALYZE"))
    return time.perf_counter() - started


def search_times(engine: Engine, rows: int, repeat: int) -> dict[str, Any]:
    from dsx_connect.results.history import SqlHistory
    from dsx_connect.results.search import Cursor, ResultFilters

    history = SqlHistory(engine)
    middle = T0_US + rows // 2 * 1000
    moment = lambda us: datetime.fromtimestamp(us / 1e6, tz=UTC)  # noqa: E731
    sha = "%064x" % (rows // 3) if engine.dialect.name == "sqlite" else None
    if sha is None:
        with engine.connect() as conn:
            sha = conn.execute(
                text("SELECT md5(:g) || md5(:h)"), {"g": str(rows // 3), "h": str(rows // 3 + 1)}
            ).scalar()
    cases: dict[str, ResultFilters] = {
        "none (newest first)": ResultFilters(),
        "verdict=Malicious": ResultFilters(verdict="Malicious"),
        "connector": ResultFilters(connector="conn3"),
        "job": ResultFilters(job="job42"),
        "time range (1 h in the middle)": ResultFilters(
            since=moment(middle), until=moment(middle + 3_600_000_000)
        ),
        "sha256": ResultFilters(sha256=sha),
        "location prefix": ResultFilters(location_prefix="share/d123/"),
        "threat name": ResultFilters(threat="Threat-3"),
        "job + verdict": ResultFilters(job="job0", verdict="Malicious"),
    }
    out: dict[str, Any] = {}
    for name, filters in cases.items():
        first_ms, next_ms, found = [], [], 0
        for _ in range(repeat):
            started = time.perf_counter()
            page = history.search(filters, None, 50)
            first_ms.append((time.perf_counter() - started) * 1000)
            found = len(page.items)
            if page.next_cursor:
                started = time.perf_counter()
                history.search(filters, Cursor.decode(page.next_cursor), 50)
                next_ms.append((time.perf_counter() - started) * 1000)
        out[name] = {
            "page_items": found,
            "first_page_ms": round(statistics.median(first_ms), 2),
            "next_page_ms": round(statistics.median(next_ms), 2) if next_ms else None,
        }
        print(f"(c) {name}: {out[name]}", flush=True)
    return out


# ---- driver -----------------------------------------------------------------------------------


@contextmanager
def database(kind: str, work: Path, pg_url: str | None) -> Iterator[Callable[[str], str]]:
    """Yields a function giving the SQLAlchemy URL of a fresh database named ``name``."""
    if kind == "sqlite":
        yield lambda name: f"sqlite:///{work / f'{name}.db'}"
        return
    server = nullcontext(pg_url) if pg_url else _started_postgres()
    with server as url:
        from tests.support.postgres import create_database

        yield lambda name: create_database(url, f"{name}_{int(time.time())}").replace(
            "postgresql://", "postgresql+psycopg://", 1
        )


@contextmanager
def _started_postgres() -> Iterator[str]:
    from tests.support.postgres import postgres_server

    with postgres_server() as url:
        yield url


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--results-db", choices=["sqlite", "postgresql"], required=True)
    parser.add_argument("--pg-url", help="an existing PostgreSQL server (postgresql://user@host:port/db)")
    parser.add_argument("--phases", default="throughput,insert,search", help="which of them to run")
    parser.add_argument("--files", type=int, default=10_000)
    parser.add_argument("--min-kib", type=int, default=1)
    parser.add_argument("--max-kib", type=int, default=64)
    parser.add_argument("--rounds", type=int, default=2, help="scans per store in (a)")
    parser.add_argument("--scan-concurrency", type=int, default=2)
    parser.add_argument("--inserts", type=int, default=200_000)
    parser.add_argument("--batch", type=int, default=1000)
    parser.add_argument(
        "--writers", type=int, default=1, help="concurrent writers in (b), like result workers"
    )
    parser.add_argument("--rows", type=int, default=10_000_000)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--out", type=Path, default=REPO_ROOT / "bench-results")
    args = parser.parse_args(argv)
    phases = set(args.phases.split(","))

    from dsx_connect.db.engine import make_engine
    from dsx_connect.db.migrate import upgrade

    work = Path(tempfile.mkdtemp(prefix="dsx-bench-results-"))
    report: dict[str, Any] = {
        "timestamp": datetime.now(UTC).isoformat(timespec="seconds"),
        "results_db": args.results_db,
        "cpus": os.cpu_count(),
    }
    try:
        with database(args.results_db, work, args.pg_url) as fresh:
            if "throughput" in phases:
                report["throughput"] = throughput(args, fresh("scan"), work)
            if "insert" in phases:
                url = fresh("inserts")
                upgrade(url)
                engine = make_engine(url)
                report["insert"] = insert_rate(engine, args.inserts, args.batch, args.writers)
                engine.dispose()
            if "search" in phases:
                url = fresh("search")
                upgrade(url)
                engine = make_engine(url)
                print(f"(c) generating {args.rows} rows", flush=True)
                report["search"] = {"rows": args.rows, "fill_s": round(fill(engine, args.rows), 1)}
                report["search"]["queries"] = search_times(engine, args.rows, args.repeat)
                engine.dispose()
    finally:
        shutil.rmtree(work, ignore_errors=True)
    goals: dict[str, bool] = {}
    if "throughput" in report and report["throughput"]["sql_to_redis"] is not None:
        goals["scan_within_10%_of_redis"] = report["throughput"]["sql_to_redis"] >= 0.9
    if "insert" in report and args.results_db == "postgresql":
        goals["insert>=20000/s"] = report["insert"]["results_per_s"] >= 20_000
    if "search" in report:
        worst = max(q["first_page_ms"] for q in report["search"]["queries"].values())
        goals["every_filter<100ms"] = worst < 100
    report["goals"] = goals
    args.out.mkdir(parents=True, exist_ok=True)
    path = args.out / f"bench-results-{args.results_db}-{datetime.now(UTC).strftime('%Y%m%dT%H%M%SZ')}.json"
    path.write_text(json.dumps(report, indent=2))
    print(json.dumps(report, indent=2))
    print(f"written {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
