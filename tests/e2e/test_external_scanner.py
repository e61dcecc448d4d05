"""`make up` with an exported ``DSXCONNECT_SCANNER__SCAN_BINARY_URL``: the stack scans with that scanner.

The stand-in external scanner is a real dsxa_lite started by the test on a port of its own, with a
token and a block list naming one benign sample file: that file comes out Malicious only if the
scans went to this scanner. `up` must check it, pass the URL and token on, and not start its own.
"""

from __future__ import annotations

import hashlib
import re
import subprocess
from pathlib import Path

import httpx
import pytest

from devstack.auth import api_headers
from devstack.procs import read_records
from devstack.samples import sample_files
from devstack.settings import StackConfig
from tests.dsxa_lite.servers import running_scanner
from tests.support.local_stack import distinct_free_ports
from tests.support.procs import PYTHON, REPO_ROOT, base_env

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(480)]

TOKEN = "external-scanner-token-1"


def test_up_uses_the_exported_scanner_and_does_not_start_dsxa_lite(tmp_path: Path) -> None:
    run_dir = tmp_path / "run"
    redis, dsxa, core, fs = distinct_free_ports(4)
    marked = next(f for f in sample_files() if f.verdict == "Benign")
    scanner_env = {
        "DSXA_LITE_AUTH_TOKEN": TOKEN,
        "DSXA_LITE_BLOCKLIST": hashlib.sha256(marked.data).hexdigest(),
    }
    with running_scanner("external", scanner_env, tmp_path) as scanner:
        scan_url = f"{scanner.url}/scan/binary/v2"
        env = base_env(
            DSX_RUN_DIR=str(run_dir), DSX_REDIS_PORT=str(redis), DSX_DSXA_PORT=str(dsxa),
            DSX_CORE_PORT=str(core), DSX_FS_PORT=str(fs), DSX_SCAN_TIMEOUT="240",
            DSXCONNECT_SCANNER__SCAN_BINARY_URL=scan_url, DSXCONNECT_SCANNER__AUTH_TOKEN=TOKEN,
        )  # fmt: skip
        cfg = StackConfig.from_env(env)
        try:
            up = subprocess.run(
                [PYTHON, "-m", "devstack", "up"], cwd=REPO_ROOT, env=env,
                capture_output=True, text=True, timeout=420,
            )  # fmt: skip
            assert up.returncode == 0, f"{up.stdout}\n{up.stderr}"
            assert f"external scanner {scan_url} answers" in up.stdout
            assert re.search(rf"^scanner\s+{re.escape(scan_url)}$", up.stdout, re.M), up.stdout
            assert "scanned 12: 9 Benign, 3 Malicious; quarantined 3" in up.stdout  # the block list counted

            started = {r["name"] for r in read_records(run_dir)}
            assert "dsxa" not in started and {"core", "worker-scan", "filesystem"} <= started
            config = httpx.get(f"{cfg.api_url}/config", headers=api_headers(cfg), timeout=10).json()
            assert config["scanner"]["scan_binary_url"] == scan_url
            results = httpx.get(
                f"{cfg.api_url}/scan/results", params={"verdict": "Malicious", "limit": 50},
                headers=api_headers(cfg), timeout=10,
            ).json()["items"]  # fmt: skip
            assert any(r["location"].endswith(marked.path) for r in results), results
        finally:
            subprocess.run(
                [PYTHON, "-m", "devstack", "down"], cwd=REPO_ROOT, env=env, timeout=120, check=False
            )
