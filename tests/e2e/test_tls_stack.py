"""The local stack with TLS on every listener and verification on every client (``DSX_TLS=1``), auth on:
the sample folder is scanned end to end over HTTPS, and nothing answers in plain text."""

from __future__ import annotations

import ssl
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from devstack.graph import components
from devstack.probes import wait_ready
from devstack.procs import read_records, spawn, stop
from devstack.samples import sample_files, write_sample
from devstack.scan import start_full_scan, wait_for_connector, wait_for_job
from devstack.settings import StackConfig
from tests.support.local_stack import distinct_free_ports

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(300)]


@pytest.fixture(scope="module")
def tls_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[StackConfig]:
    run_dir = tmp_path_factory.mktemp("tls-stack")
    redis_port, dsxa_port, core_port, fs_port = distinct_free_ports(4)
    cfg = StackConfig(
        run_dir=run_dir, redis_port=redis_port, dsxa_port=dsxa_port, core_port=core_port, fs_port=fs_port,
        scan_concurrency=1, tls=True, start_timeout=90,
    )  # fmt: skip
    for folder in (cfg.log_dir, run_dir / "redis", cfg.quarantine_dir):
        folder.mkdir(parents=True, exist_ok=True)
    write_sample(cfg.sample_dir)
    order = 0
    try:
        for stage in components(cfg):
            started = []
            for comp in stage:
                started.append((comp, spawn(run_dir, comp, order)))
                order += 1
            for comp, record in started:
                wait_ready(comp, record, cfg.start_timeout)
        yield cfg
    finally:
        stop(read_records(run_dir), out=lambda _line: None)


def test_a_full_scan_over_tls_with_verification_gives_every_verdict(tls_stack: StackConfig) -> None:
    cfg = tls_stack
    env = components(cfg)[1][1].env  # the core's
    assert env["DSXCONNECT_USE_TLS"] == "true" and env["DSXCONNECT_CONNECTORS__VERIFY_TLS"] == "true"
    connector = wait_for_connector(cfg)  # registered over HTTPS, the core's certificate verified
    assert connector["url"].startswith("https://")
    job = wait_for_job(cfg, start_full_scan(cfg, connector), out=lambda _line: None)
    sample = sample_files()
    malicious = [f for f in sample if f.verdict == "Malicious"]
    assert job["processed"] == len(sample) and job["errors"] == 0
    assert job["verdicts"].get("Malicious") == len(malicious)
    for item in malicious:  # the action reached the connector over HTTPS, signed
        assert (cfg.quarantine_dir / item.path).read_bytes() == item.data


def test_no_listener_answers_plain_http_or_an_unverified_client(tls_stack: StackConfig) -> None:
    cfg = tls_stack
    ca = str(cfg.run_dir / "certs" / "ca.crt")
    for port, path in (
        (cfg.core_port, "/healthz"),
        (cfg.dsxa_port, "/healthz"),
        (cfg.fs_port, "/filesystem-connector/healthz"),
    ):
        with pytest.raises(httpx.HTTPError):
            httpx.get(f"http://127.0.0.1:{port}{path}", timeout=5).raise_for_status()
        with pytest.raises(httpx.ConnectError, match="CERTIFICATE_VERIFY_FAILED"):
            httpx.get(
                f"https://127.0.0.1:{port}{path}", timeout=5
            )  # the system store does not know the dev CA
        verified = httpx.get(
            f"https://127.0.0.1:{port}{path}", timeout=5, verify=ssl.create_default_context(cafile=ca)
        )
        assert verified.status_code == 200
    assert Path(ca).is_file() and (cfg.run_dir / "auth.json").stat().st_mode & 0o077 == 0
