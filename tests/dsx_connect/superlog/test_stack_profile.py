"""``DSX_SYSLOG=1 make up``: the local stack starts an rsyslogd of its own that receives the feed."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

from devstack.emulators import rsyslog_component
from devstack.graph import components
from devstack.probes import wait_ready
from devstack.procs import is_running, spawn
from devstack.scan import down, status
from devstack.settings import StackConfig
from dsx_connect.superlog.config import SyslogSettings
from dsx_connect.superlog.syslog import SyslogSink
from tests.dsx_connect.superlog.conftest import scan_event
from tests.dsx_connect.superlog.peers import RSYSLOGD
from tests.support.emulators import missing
from tests.support.procs import free_port, wait_for


def config(tmp_path: Path, **env: str) -> StackConfig:
    return StackConfig.from_env({"DSX_RUN_DIR": str(tmp_path / "run"), **env})


@pytest.mark.unit
def test_the_syslog_profile_adds_rsyslog_and_points_the_core_at_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DSX_REDIS_SERVER", sys.executable)
    monkeypatch.delenv("DSXCONNECT_SUPERLOG__DESTINATIONS", raising=False)
    monkeypatch.delenv("DSXCONNECT_SUPERLOG__ENABLED", raising=False)
    assert config(tmp_path).syslog_port == 0
    if RSYSLOGD is None:
        missing("rsyslogd is not installed: apt-get install rsyslog (scripts/deps/apt-packages.txt)")
    cfg = config(tmp_path, DSX_SYSLOG="1", DSX_SYSLOG_PORT="15514")
    stages = components(cfg)
    assert [c.name for c in stages[0]] == ["redis", "rsyslog"]
    comps = {c.name: c for stage in stages for c in stage}
    for name in ("core", "worker-result", "worker-notify"):
        assert comps[name].env["DSXCONNECT_SYSLOG__SYSLOG_SERVER_PORT"] == "15514"
        assert comps[name].env["DSXCONNECT_SUPERLOG__DESTINATIONS"] == "syslog"
    assert comps["rsyslog"].port_knob == "DSX_SYSLOG_PORT"
    assert (cfg.run_dir / "syslog" / "rsyslog.conf").read_text().count('port="15514"') == 2


@pytest.mark.integration
def test_the_stacks_rsyslog_starts_writes_the_feed_and_stops(tmp_path: Path) -> None:
    if RSYSLOGD is None:
        missing("rsyslogd is not installed: apt-get install rsyslog (scripts/deps/apt-packages.txt)")
    cfg = config(tmp_path, DSX_SYSLOG="1", DSX_SYSLOG_PORT=str(free_port()))
    rsyslog = rsyslog_component(cfg)
    record = spawn(cfg.run_dir, rsyslog, 0)
    try:
        wait_ready(rsyslog, record, 15)
        [health] = status(cfg.run_dir)
        assert (health.name, health.ok) == ("rsyslog", True)
        sink = SyslogSink(SyslogSettings(host="127.0.0.1", port=cfg.syslog_port, hostname="h"))
        sink.send([sink.encode(json.loads(scan_event(n).model_dump_json())) for n in range(3)])
        sink.close()
        out = cfg.run_dir / "syslog" / "scan-results.log"
        wait_for(lambda: out.exists() and len(out.read_text().splitlines()) == 3, timeout=10, what="3 lines")
        assert all(" h dsx-connect {" in line for line in out.read_text().splitlines())
    finally:
        down(cfg.run_dir, out=lambda _line: None)
    assert not is_running(record["pid"])
