"""``inv faults``: the fault tests of ``tests/e2e/test_faults.py`` at scale, one fault at a time.

The suite runs each fault with 600 files (``DSX_FAULT_FILES``) to stay within CI's time; this task
runs them with 10,000 (``--files``), each in its own pytest process, and prints one Markdown row
per fault for docs/reliability.md: a passing fault test means every file has exactly one result (or
a dead letter, then requeued), none lost, none counted or acted on twice.
"""

from __future__ import annotations

import os
import shlex
import subprocess
import sys
import time
from pathlib import Path

from invoke import Context, task

ROOT = Path(__file__).resolve().parents[1]
FAULTS = "tests/e2e/test_faults.py"


def fault_ids(python: str, only: str = "") -> list[str]:
    """The node ids of the fault tests (those whose id contains ``only``)."""
    listed = subprocess.run(
        [python, "-m", "pytest", FAULTS, "--collect-only", "-q", "-m", "slow", "-p", "no:cacheprovider"],
        cwd=ROOT, capture_output=True, text=True, check=False,
    )  # fmt: skip
    ids = [line.strip() for line in listed.stdout.splitlines() if line.startswith(FAULTS + "::")]
    return [i for i in ids if only in i]


def row(node_id: str, files: int, passed: bool, seconds: float) -> str:
    """One Markdown row: fault, files, survived, lost, doubled, time."""
    name = node_id.split("::", 1)[1].removeprefix("test_").replace("_", " ")
    zero = "0" if passed else "?"
    return f"| {name} | {files:,} | {'yes' if passed else 'NO'} | {zero} | {zero} | {seconds:.0f} s |"


@task(
    help={
        "files": "files per fault (default 10000)",
        "only": "run only the faults whose test id contains this text, e.g. 'worker_killed'",
        "args": "extra pytest arguments",
    }
)
def faults(c: Context, files: int = 10_000, only: str = "", args: str = "") -> None:
    """Fault tests at scale (slow: minutes per fault on two cores), one fault at a time, with a table."""
    python = os.environ.get("PYTHON") or str(ROOT / os.environ.get("VENV", ".venv") / "bin" / "python")
    if not Path(python).exists():
        python = sys.executable
    env = {"DSX_FAULT_FILES": str(files), "PYTHONPATH": str(ROOT)}
    ids = fault_ids(python, only)
    if not ids:
        raise SystemExit(f"no fault test matches {only!r}")
    rows = []
    for node_id in ids:
        started = time.monotonic()
        result = c.run(
            f"{shlex.quote(python)} -m pytest {shlex.quote(node_id)} -m slow -q -p no:cacheprovider {args}",
            env=env, warn=True, pty=False,
        )  # fmt: skip
        rows.append(row(node_id, files, result is not None and result.ok, time.monotonic() - started))
        print(rows[-1], flush=True)
    print(
        "\n| fault | files | survived | lost | doubled | time |\n| --- | ---: | :---: | ---: | ---: | ---: |"
    )
    print("\n".join(rows))
    if not all("| yes |" in r for r in rows):
        raise SystemExit("a fault test failed")
