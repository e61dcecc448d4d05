"""dsxa_lite alone: files/s on plain files and MB/s on a 1 GiB zip (``inv bench --args=--dsxa-only``).

Files/s: ``wrk`` posts generated plain files (1-64 KiB of random bytes, as ``scripts/bench.py``)
to ``/scan/binary/v2`` of a dsxa_lite on a free port. With ``--baseline REF`` the same files go,
in the same run, to the dsxa_lite of git revision REF (checked out in a temporary worktree),
alternating baseline and current ``--rounds`` times so that the machine's drift falls on both;
the report gives each side's medians of files/s and of the scanner's CPU time per file (steady
on a busy machine, where files/s follows whatever else runs) and their ratios.

MB/s: one zip of ``--zip-gib`` GiB (64 MiB members, half random bytes and half text, deflated) is
posted once to the current scanner, which unpacks and scans every member; the report gives the
elapsed time, MB/s of the zip as sent, members scanned, and the scanner's peak RSS.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import zipfile
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx

REPO_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO_ROOT))

from devstack.probes import http_ok  # noqa: E402
from devstack.procs import ServiceProcess  # noqa: E402
from scripts.bench import free_port, make_files, run_wrk  # noqa: E402

MiB = 1 << 20


def peak_rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return round(int(line.split()[1]) / 1024, 1)
    return 0.0


@contextmanager
def scanner(root: Path, log: Path, env: dict[str, str] | None = None) -> Iterator[tuple[str, int]]:
    """dsxa_lite of the tree at ``root`` under uvicorn (httptools, uvloop) on a free port."""
    port = free_port()
    environ = {k: v for k, v in os.environ.items() if not k.startswith("DSXA_LITE_")}
    environ.update({"PYTHONPATH": str(root), "PYTHONUNBUFFERED": "1", "LOG_LEVEL": "WARNING", **(env or {})})
    argv = [sys.executable, "-m", "uvicorn", "dsxa_lite.app:app", "--host", "127.0.0.1", "--port", str(port)]
    argv += ["--http", "httptools", "--loop", "uvloop", "--log-level", "warning"]
    proc = ServiceProcess(log.stem, argv, environ, log.parent, cwd=root)
    proc.log_path = log
    proc.start()
    try:
        url = f"http://127.0.0.1:{port}"
        try:
            proc.wait_ready(http_ok(f"{url}/healthz"), timeout=60, what=f"dsxa_lite at {root}")
        except RuntimeError:
            raise RuntimeError(f"dsxa_lite at {root} did not start; see {log}") from None
        yield url, proc.pid
    finally:
        proc.stop(timeout=15)


@contextmanager
def worktree(ref: str) -> Iterator[Path]:
    """``ref`` checked out (detached) in a temporary git worktree, removed afterwards."""
    folder = Path(tempfile.mkdtemp(prefix="dsxa-baseline-"))
    subprocess.run(["git", "worktree", "add", "--detach", str(folder), ref], cwd=REPO_ROOT, check=True)
    try:
        yield folder
    finally:
        subprocess.run(["git", "worktree", "remove", "--force", str(folder)], cwd=REPO_ROOT, check=False)
        shutil.rmtree(folder, ignore_errors=True)


def make_zip(path: Path, size: int, seed: int = 11) -> int:
    """A zip of about ``size`` bytes: 64 MiB members, half random, half text; returns members."""
    rng = random.Random(seed)
    text = b"".join(f"line {n} of a benign report, nothing to see\n".encode() for n in range(800_000))
    members = 0
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED, compresslevel=1) as archive:
        while path.stat().st_size < size:
            half = 32 * MiB
            data = rng.randbytes(half) + text[:half]
            archive.writestr(f"part{members:03d}.bin", data)
            members += 1
    return members


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of ``pid`` (Linux ``/proc/<pid>/stat``, clock ticks)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def measure(
    server: tuple[str, int], files: list[Path], seconds: int, connections: int, work: Path
) -> tuple[float, float]:
    """(files/s, scanner CPU µs per file) of one wrk run: the second holds steady on a busy
    machine, where the first follows whatever else runs."""
    url, pid = server
    before = cpu_seconds(pid)
    result = run_wrk(f"{url}/scan/binary/v2", files, seconds, connections, work)
    used = cpu_seconds(pid) - before
    if result.get("error"):
        raise SystemExit(result["error"])
    done = re.search(r"(\d+) requests in", result.get("output", ""))
    requests = int(done.group(1)) if done else 0
    return float(result.get("files_per_s") or 0), round(used * 1e6 / max(requests, 1), 1)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--files", type=int, default=2000)
    parser.add_argument("--wrk-seconds", type=int, default=8)
    parser.add_argument("--wrk-connections", type=int, default=16)
    parser.add_argument("--rounds", type=int, default=3, help="alternations of baseline and current")
    parser.add_argument("--baseline", help="git revision to compare with (e.g. main)")
    parser.add_argument("--zip-gib", type=float, default=1.0, help="size of the zip phase; 0 skips it")
    parser.add_argument("--out", type=Path, default=REPO_ROOT / "bench-results")
    args = parser.parse_args(argv)

    work = Path(tempfile.mkdtemp(prefix="dsxa-bench-"))
    report: dict[str, Any] = {
        "timestamp": datetime.now(UTC).isoformat(timespec="seconds"),
        "cpus": os.cpu_count(),
    }
    try:
        make_files(work / "files", args.files, 1, 64)
        files = sorted((work / "files").rglob("*.bin"))
        current: list[tuple[float, float]] = []
        baseline: list[tuple[float, float]] = []
        wrk = (files, args.wrk_seconds, args.wrk_connections, work)
        with (
            scanner(REPO_ROOT, work / "current.log") as this,
            worktree(args.baseline) if args.baseline else _nothing() as base_root,
        ):
            base_cm = scanner(base_root, work / "baseline.log") if base_root else _nothing()
            with base_cm as base:
                for _ in range(args.rounds):
                    if base:
                        baseline.append(measure(base, *wrk))
                    current.append(measure(this, *wrk))
        report["plain_files"] = summary("current", current)
        if baseline:
            plain = report["plain_files"] | summary("baseline", baseline) | {"baseline": args.baseline}
            for metric in ("files_per_s", "cpu_us_per_file"):
                plain[f"ratio_{metric}"] = round(
                    plain[f"current_{metric}_median"] / plain[f"baseline_{metric}_median"], 3
                )
            report["plain_files"] = plain
        print(json.dumps(report["plain_files"]), flush=True)

        if args.zip_gib > 0:
            path = work / "big.zip"
            members = make_zip(path, int(args.zip_gib * (1 << 30)))
            size = path.stat().st_size
            env = {"DSXA_LITE_MAX_FILE_SIZE_BYTES": str(4 << 30)}
            with scanner(REPO_ROOT, work / "zip.log", env) as (url, pid), path.open("rb") as body:
                started = time.perf_counter()
                answer = httpx.post(f"{url}/scan/binary/v2", content=body, timeout=3600).json()
                elapsed = time.perf_counter() - started
                rss = peak_rss_mb(pid)
            report["zip"] = {
                "size_bytes": size,
                "members": members,
                "elapsed_s": round(elapsed, 2),
                "mb_per_s": round(size / MiB / elapsed, 1),
                "verdict": answer.get("verdict"),
                "container_files_scanned": answer.get("container_files_scanned"),
                "container_files_scanned_size": answer.get("container_files_scanned_size"),
                "peak_rss_mb": rss,
            }
            print(json.dumps(report["zip"]), flush=True)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    args.out.mkdir(parents=True, exist_ok=True)
    out = args.out / f"bench-dsxa-{datetime.now(UTC).strftime('%Y%m%dT%H%M%SZ')}.json"
    out.write_text(json.dumps(report, indent=2))
    print(f"written {out}")
    return 0


def summary(side: str, runs: list[tuple[float, float]]) -> dict[str, Any]:
    """Each run and the medians of one side."""
    fps = [run[0] for run in runs]
    cpu = [run[1] for run in runs]
    return {
        f"{side}_files_per_s": fps,
        f"{side}_files_per_s_median": statistics.median(fps),
        f"{side}_cpu_us_per_file": cpu,
        f"{side}_cpu_us_per_file_median": statistics.median(cpu),
    }


@contextmanager
def _nothing() -> Iterator[None]:
    yield None


if __name__ == "__main__":
    sys.exit(main())
