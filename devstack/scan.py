"""The commands of the stack: ``up`` (start, full scan of the sample, summary), ``down``, ``status``,
and the full-scan driver they share with the tests (find the connector, start a scan, wait for its job)."""

from __future__ import annotations

import os
import shutil
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from http.client import HTTPException
from pathlib import Path
from typing import Any

from devstack.auth import stack_secrets
from devstack.errors import StackError, StackTimeout
from devstack.graph import components
from devstack.probes import api_json, check_ports, check_scanner, probe, wait_ready
from devstack.procs import owns, read_records, spawn, stop, wait_until
from devstack.samples import SampleFile, quarantined_objects, sample_files, seed_bucket, write_sample
from devstack.settings import SAMPLE_BUCKET, StackConfig


@dataclass
class UpResult:
    """What ``up`` did: the full scan's job and what it found."""

    job_id: str
    job: dict[str, Any]
    connector: dict[str, Any]
    sample: list[SampleFile]
    quarantined: int
    summary: str


def up(cfg: StackConfig, out: Callable[[str], None] = print) -> UpResult:
    """Start the stack from ``cfg.run_dir``, full-scan the sample folder and report the verdicts."""
    records = read_records(cfg.run_dir)
    running = [r["name"] for r in records if owns(r)]
    if running:
        raise StackError(
            f"a stack is already running from {cfg.run_dir} ({', '.join(running)}): "
            "`make status` shows it, `make down` stops it"
        )
    stop(records, out=out)  # drops stale records
    stages = components(cfg)
    check_ports([comp for stage in stages for comp in stage])
    if cfg.scanner_url:
        verdict = check_scanner(cfg)
        out(f"external scanner {cfg.scanner_url} answers (test scan: {verdict})")

    for folder in (cfg.sample_dir, cfg.quarantine_dir):
        shutil.rmtree(folder, ignore_errors=True)
    for folder in (cfg.log_dir, cfg.run_dir / "redis", cfg.quarantine_dir):
        folder.mkdir(parents=True, exist_ok=True)
    choice = cfg.choice
    sample = sample_files() if choice.cloud else write_sample(cfg.sample_dir)
    noun = {"azure_blob_storage": "container"}.get(
        cfg.connector, "drive" if choice.sample == "drive" else "bucket"
    )
    scanned = f"{noun} {SAMPLE_BUCKET} on {choice.emulator}" if choice.cloud else str(cfg.sample_dir)

    out(f"starting the dsx-connect stack in {cfg.run_dir}")
    order = 0
    try:
        for index, stage in enumerate(stages):
            started = []
            for comp in stage:
                started.append((comp, spawn(cfg.run_dir, comp, order)))
                order += 1
            for comp, record in started:
                wait_ready(comp, record, cfg.start_timeout)
                out(f"  {comp.name:<14} ready  pid {record['pid']:<7} {comp.label}")
            if choice.cloud and index == 0:  # the emulator is up: fill the sample bucket
                try:
                    seed_bucket(cfg, sample)
                except Exception as exc:
                    raise StackError(f"could not upload the sample files to {scanned}: {exc}") from None
                out(f"  uploaded {len(sample)} sample files to {scanned}")
    except BaseException:
        out(f"start-up failed: stopping what was started (logs stay in {cfg.log_dir})")
        stop(read_records(cfg.run_dir), out=out)
        raise

    try:
        connector = wait_for_connector(cfg)
        job_id = start_full_scan(cfg, connector)
        out(f"full scan of {scanned} ({len(sample)} files): job {job_id}")
        job = wait_for_job(cfg, job_id, out)
    except StackError as exc:
        raise StackError(
            f"{exc}\nthe stack is still running: `make status` shows it, `make down` stops it"
        ) from None
    if choice.cloud:
        quarantined = quarantined_objects(cfg)
    else:
        quarantined = sum(1 for p in cfg.quarantine_dir.rglob("*") if p.is_file())
    summary = summarize(job, quarantined)
    out("")
    out(f"dashboard   {cfg.core_url}/")
    if os.environ.get("DSXCONNECT_AUTH__ENABLED", "").strip().lower() in ("0", "false", "no", "off"):
        out("auth        off (DSXCONNECT_AUTH__ENABLED=false)")
    else:
        out(
            f"operator key {stack_secrets(cfg.run_dir)['operator_key']}  (dashboard login; X-API-Key for the API)"
        )
    out(f"API docs    {cfg.core_url}/docs")
    out(f"scanner     {cfg.scan_binary_url}{'' if cfg.scanner_url else ' (dsxa_lite)'}")
    if choice.cloud:
        out(f"connector   {cfg.connector_url} ({scanned} at {cfg.emulator_url})")
        out(f"            new objects: POST the storage's notification to {cfg.connector_url}/webhook/event")
        out(f"            (its sender is verified: connectors/{cfg.connector}/README.md, Webhooks)")
    else:
        out(f"connector   {cfg.connector_url} (watching {cfg.sample_dir})")
    out(f"run dir     {cfg.run_dir} (logs/, pids/{'' if choice.cloud else ', quarantine/'})")
    out(summary)
    out("stop it with: make down")
    return UpResult(job_id, job, connector, sample, quarantined, summary)


def find_connector(cfg: StackConfig) -> dict[str, Any] | None:
    """The connector's registration in the core, if it has registered."""
    try:
        status, body, _ = api_json(cfg, "GET", "/connectors/list")
    except (OSError, HTTPException):
        return None
    if status != 200:
        return None
    ours = [
        item
        for item in (body if isinstance(body, list) else [])
        if str(item.get("url", "")).rstrip("/") == cfg.connector_url
    ]
    return max(ours, key=lambda item: str(item.get("last_heartbeat", "")), default=None)


def wait_for_connector(cfg: StackConfig) -> dict[str, Any]:
    try:
        return wait_until(
            lambda: find_connector(cfg), cfg.start_timeout, f"the {cfg.connector} connector to register"
        )
    except StackTimeout as exc:
        raise StackError(
            f"{exc}: see {cfg.log_dir / (cfg.connector + '.log')} and {cfg.log_dir / 'core.log'}"
        ) from None


def start_full_scan(cfg: StackConfig, connector: Mapping[str, Any]) -> str:
    """Ask the core for a full scan of the connector's asset; return the job id."""
    status, body, headers = api_json(cfg, "POST", f"/connectors/full_scan/{connector['uuid']}", timeout=30)
    job_id = (body.get("job_id") if isinstance(body, dict) else None) or headers.get("X-Job-Id")
    if status not in (200, 202) or not job_id:
        raise StackError(f"POST /connectors/full_scan answered {status}: {body}")
    return str(job_id)


def wait_for_job(cfg: StackConfig, job_id: str, out: Callable[[str], None] = print) -> dict[str, Any]:
    """Poll the job until it completes; StackError if it fails, is cancelled or times out."""
    last: dict[str, Any] = {}
    shown = time.monotonic()

    def done() -> dict[str, Any] | None:
        nonlocal shown
        try:
            status, body, _ = api_json(cfg, "GET", f"/scan/jobs/{job_id}")
        except (OSError, HTTPException):
            return None
        if status != 200 or not isinstance(body, dict):
            return None
        last.clear()
        last.update(body)
        if body.get("status") in ("failed", "cancelled"):
            raise StackError(f"job {job_id} ended {body['status']}: {body}; logs in {cfg.log_dir}")
        if time.monotonic() - shown > 5:
            shown = time.monotonic()
            out(
                f"  job {job_id}: {body.get('status')}, {body.get('processed')} of {body.get('enqueued_total')}"
            )
        return body if body.get("status") == "completed" else None

    try:
        return wait_until(done, cfg.scan_timeout, f"job {job_id} to complete", interval=0.25)
    except StackTimeout as exc:
        raise StackError(
            f"{exc} (last seen: status {last.get('status')}, processed {last.get('processed')} of "
            f"{last.get('enqueued_total')}); logs in {cfg.log_dir} (worker-*.log, core.log, {cfg.connector}.log)"
        ) from None


def summarize(job: Mapping[str, Any], quarantined: int) -> str:
    """One line, e.g. ``scanned 12: 10 Benign, 2 Malicious; quarantined 2``."""
    verdicts = {name: n for name, n in (job.get("verdicts") or {}).items() if n}
    ranked = sorted(verdicts.items(), key=lambda kv: (-kv[1], kv[0]))
    line = f"scanned {job.get('processed', 0)}: {', '.join(f'{n} {v}' for v, n in ranked) or 'nothing'}"
    line += f"; quarantined {quarantined}"
    if job.get("errors"):
        line += f"; {job['errors']} errors"
    return line


def down(run_dir: Path, out: Callable[[str], None] = print) -> list[str]:
    """Stop what ``up`` started from ``run_dir``; nothing else."""
    records = read_records(run_dir)
    if not records:
        out(f"nothing running from {run_dir}")
        return []
    out(f"stopping the dsx-connect stack in {run_dir}")
    return stop(records, out=out)


@dataclass(frozen=True)
class Health:
    """One component as ``status`` sees it."""

    name: str
    pid: int | None
    ok: bool
    detail: str


def status(run_dir: Path) -> list[Health]:
    """Probe each component started from ``run_dir``."""
    rows = []
    for record in read_records(run_dir):
        if owns(record):
            ok, detail = probe(record.get("health", "pid"), record)
        else:
            ok, detail = False, "not running"
        rows.append(Health(record.get("name", "?"), record.get("pid"), ok, detail))
    return rows


def print_status(run_dir: Path, out: Callable[[str], None] = print) -> bool:
    """Print one line per component; True if there is a stack and all of it is healthy."""
    rows = status(run_dir)
    if not rows:
        out(f"nothing running from {run_dir} (`make up` starts the stack)")
        return False
    out(f"dsx-connect stack in {run_dir}")
    for row in rows:
        out(f"  {row.name:<14} {'ok' if row.ok else 'DOWN':<5} pid {row.pid!s:<7} {row.detail}")
    return all(row.ok for row in rows)
