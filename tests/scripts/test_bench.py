"""scripts/bench.py and its setup: every run has its ratio, or the benchmark does not run at all."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from scripts import bench
from tests.support.procs import REPO_ROOT, base_env

pytestmark = pytest.mark.unit


def test_each_run_is_judged_against_the_ceilings_on_either_side_and_the_median_is_reported() -> None:
    summary = bench.summarize_runs([4000, 6000, 4000, 5000], [2000, 1000, 2250])

    assert summary["ratios"] == [0.4, 0.2, 0.5]
    assert [run["scanner_files_per_s"] for run in summary["runs"]] == [5000, 5000, 4500]
    assert summary["median_ratio"] == 0.4
    assert summary["median_files_per_s"] == 2000


@pytest.mark.parametrize(
    ("ceilings", "fps"),
    [([4000, 0], [1000]), ([4000], [1000]), ([4000, 4000], [])],
    ids=["missing-ceiling", "ceiling-count", "no-runs"],
)
def test_a_run_without_its_ceiling_is_never_summarized(ceilings: list[float], fps: list[float]) -> None:
    with pytest.raises(ValueError):
        bench.summarize_runs(ceilings, fps)


def test_runs_must_be_at_least_one() -> None:
    proc = subprocess.run(
        [sys.executable, "scripts/bench.py", "--runs", "0"],
        cwd=REPO_ROOT,
        env=base_env(),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert proc.returncode == 2
    assert "--runs" in proc.stderr and "must be 1 or more" in proc.stderr


def test_without_wrk_the_benchmark_refuses_before_it_starts(tmp_path: Path) -> None:
    """A PATH without wrk: exit 2 naming wrk and how to get it, no files generated."""
    empty = tmp_path / "bin"
    empty.mkdir()
    env = {**base_env(), "PATH": str(empty), "TMPDIR": str(tmp_path)}
    proc = subprocess.run(
        [sys.executable, "scripts/bench.py", "--files", "5", "--out", str(tmp_path / "out")],
        cwd=REPO_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert "wrk is not installed" in proc.stderr and "make bench" in proc.stderr
    assert not (tmp_path / "out").exists()
    assert not list(tmp_path.glob("dsx-bench-*"))


@pytest.mark.skipif(shutil.which("make") is None, reason="make is not installed")
def test_make_bench_installs_wrk_first_and_make_test_does_not() -> None:
    def dry_run(target: str) -> str:
        return subprocess.run(
            ["make", "-n", "--no-print-directory", target, "BENCH_ARGS=--runs 3"],
            cwd=REPO_ROOT,
            env={**os.environ, "MAKEFLAGS": ""},
            capture_output=True,
            text=True,
            timeout=30,
            check=True,
        ).stdout

    bench_steps = dry_run("bench")
    assert "ensure-deps.sh bench" in bench_steps
    assert bench_steps.index("ensure-deps.sh bench") < bench_steps.index("scripts/bench.py --runs 3")
    assert "ensure-deps.sh bench" not in dry_run("test")


def test_ensure_deps_bench_is_quick_when_wrk_is_there(tmp_path: Path) -> None:
    # a wrk first on PATH (the script only asks whether one is there), so CI without wrk runs this too
    wrk = tmp_path / "wrk"
    wrk.write_text("#!/bin/sh\nexit 0\n")
    wrk.chmod(0o755)
    proc = subprocess.run(
        ["bash", "scripts/ensure-deps.sh", "bench"],
        cwd=REPO_ROOT,
        env={**os.environ, "PATH": f"{tmp_path}{os.pathsep}{os.environ['PATH']}"},
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    assert "installing" not in proc.stderr


def test_generated_files_are_unique_of_the_asked_sizes_and_never_look_like_an_archive(tmp_path: Path) -> None:
    """Random bytes start with a container's magic now and then (gzip's two bytes, in about one run
    in twenty): the scanner answers Not Scanned, which is never cached, and the rescan's exact
    counts failed. Every generated file starts with the bench's prefix instead."""
    from dsxa_lite.filetype import detect_file_type

    total = bench.make_files(tmp_path, 300, 1, 2)
    files = sorted(tmp_path.rglob("*.bin"))
    contents = [path.read_bytes() for path in files]
    assert len(files) == 300 and total == sum(len(c) for c in contents)
    assert all(1024 <= len(c) <= 2048 for c in contents) and len(set(contents)) == 300
    assert all(c.startswith(bench.FILE_PREFIX) for c in contents)
    assert {detect_file_type(c[:512]) for c in contents} == {"Unknown"}
    assert detect_file_type(b"\x1f\x8b" + contents[0]) == "GZIP"  # what the prefix keeps away


@pytest.mark.parametrize(
    ("args", "complaint"),
    [
        (["--min-kib", "0"], "--min-kib: must be 1 or more, got 0"),
        (["--files", "0"], "--files: must be 1 or more, got 0"),
        (["--min-kib", "8", "--max-kib", "4"], "--max-kib (4) is below --min-kib (8)"),
    ],
)
def test_file_sizes_and_counts_the_generator_cannot_honour_are_refused(
    args: list[str], complaint: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exited:
        bench.main(args)
    assert exited.value.code == 2
    assert complaint in capsys.readouterr().err
