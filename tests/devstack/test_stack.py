"""devstack (make up/down/status): configuration, port checks, the sample folder, and stopping only our processes."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import pytest

from devstack import auth, errors, graph, probes, procs, samples, scan, settings
from tests.support.procs import REPO_ROOT, base_env, free_port

EICAR_SHA256 = "275a021bbfb6489e54d471899f7db9d1663fc695ec2fe2a2c4538aabf651fd0f"


def config(tmp_path: Path, dsxa_port: int = 0, core_port: int = 0, fs_port: int = 0) -> settings.StackConfig:
    """A stack on free ports, except the ones given."""
    return settings.StackConfig(
        tmp_path / "run",
        redis_port=free_port(),
        dsxa_port=dsxa_port or free_port(),
        core_port=core_port or free_port(),
        fs_port=fs_port or free_port(),
    )


# --------------------------------------------------------------------------- unit


@pytest.mark.unit
def test_eicar_file_is_assembled_at_run_time() -> None:
    data = samples.eicar_bytes()
    assert len(data) == 68
    assert hashlib.sha256(data).hexdigest() == EICAR_SHA256


@pytest.mark.unit
def test_no_file_of_the_repository_holds_the_eicar_string() -> None:
    if shutil.which("git") is None or not (REPO_ROOT / ".git").exists():
        pytest.skip("not a git checkout")
    listed = subprocess.run(
        ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
        cwd=REPO_ROOT, capture_output=True, check=True,
    ).stdout.split(b"\0")  # fmt: skip
    eicar = samples.eicar_bytes()
    holders = [
        name.decode()
        for name in listed
        if name
        and (REPO_ROOT / name.decode()).is_file()
        and eicar in (REPO_ROOT / name.decode()).read_bytes()
    ]
    assert len(listed) > 10
    assert holders == []


@pytest.mark.unit
def test_sample_folder_holds_ten_benign_and_two_malicious_files(tmp_path: Path) -> None:
    files = samples.write_sample(tmp_path)

    assert sorted(f.verdict for f in files).count("Benign") == 10
    assert [f.path for f in files if f.verdict == "Malicious"] == [
        "inbox/eicar.com",
        "docs/reports/invoice-2024.txt",
    ]
    assert len({f.path for f in files}) == len(files)
    for item in files:
        assert (tmp_path / item.path).read_bytes() == item.data
    assert (tmp_path / "inbox/eicar.com").read_bytes() == samples.eicar_bytes()
    assert samples.YARA_MARKER.encode() in (tmp_path / "docs/reports/invoice-2024.txt").read_bytes()
    assert samples.YARA_MARKER == "DSXA-LITE-TEST-MALWARE-MARKER"
    assert not any(
        samples.YARA_MARKER.encode() in f.data or samples.eicar_bytes() in f.data
        for f in files
        if f.verdict == "Benign"
    )
    assert (tmp_path / "images/pixel.png").read_bytes().startswith(b"\x89PNG\r\n\x1a\n")


@pytest.mark.unit
def test_config_reads_the_dsx_knobs(tmp_path: Path) -> None:
    env = {
        "DSX_RUN_DIR": str(tmp_path / "r"), "DSX_REDIS_PORT": "7001", "DSX_DSXA_PORT": "7002",
        "DSX_CORE_PORT": "7003", "DSX_FS_PORT": "7004", "DSX_SCAN_CONCURRENCY": "3", "DSX_SCAN_TIMEOUT": "9.5",
        "DSX_CORE_WORKERS": "2",
    }  # fmt: skip
    cfg = settings.StackConfig.from_env(env)

    assert (cfg.run_dir, cfg.redis_port, cfg.dsxa_port, cfg.core_port, cfg.fs_port) == (
        tmp_path / "r", 7001, 7002, 7003, 7004,
    )  # fmt: skip
    assert (cfg.scan_concurrency, cfg.scan_timeout, cfg.core_workers) == (3, 9.5, 2)
    assert cfg.connector_url == "http://127.0.0.1:7004/filesystem-connector"
    assert cfg.api_url == "http://127.0.0.1:7003/dsx-connect/api/v1"
    assert settings.StackConfig.from_env({}).run_dir == REPO_ROOT / ".run"


@pytest.mark.unit
@pytest.mark.parametrize(
    ("name", "value"), [("DSX_CORE_PORT", "web"), ("DSX_FS_PORT", "70000"), ("DSX_REDIS_PORT", "0")]
)
def test_config_refuses_a_bad_value_naming_the_variable(name: str, value: str) -> None:
    with pytest.raises(errors.StackError, match=name):
        settings.StackConfig.from_env({name: value})


@pytest.mark.unit
def test_port_free_is_false_while_something_listens() -> None:
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        port = listener.getsockname()[1]
        assert not probes.port_free(port)
    assert probes.port_free(port)


@pytest.mark.unit
def test_up_refuses_a_taken_port_naming_its_knob_before_starting_anything(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DSX_REDIS_SERVER", sys.executable)
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        cfg = config(tmp_path, core_port=listener.getsockname()[1])
        with pytest.raises(errors.StackError, match=rf"port {cfg.core_port} for core .*DSX_CORE_PORT"):
            scan.up(cfg, out=lambda _line: None)
    assert not (cfg.run_dir / "pids").exists() or not any((cfg.run_dir / "pids").iterdir())


@pytest.mark.unit
def test_check_ports_refuses_two_components_on_one_port(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DSX_REDIS_SERVER", sys.executable)
    port = free_port()
    comps = [c for stage in graph.components(config(tmp_path, dsxa_port=port, fs_port=port)) for c in stage]
    with pytest.raises(errors.StackError, match="DSX_FS_PORT and DSX_DSXA_PORT are both"):
        probes.check_ports(comps)


@pytest.mark.unit
def test_components_wire_the_services_together(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DSX_REDIS_SERVER", sys.executable)
    cfg = config(tmp_path)
    comps = {c.name: c for stage in graph.components(cfg) for c in stage}

    assert list(comps) == [
        "redis", "dsxa", "core", "worker-scan", "worker-action", "worker-result", "worker-notify", "filesystem",
    ]  # fmt: skip
    password = auth.stack_secrets(cfg.run_dir)["redis_password"]
    for name in ("core", "worker-scan", "worker-notify"):
        assert comps[name].env["DSXCONNECT_REDIS_URL"] == f"redis://:{password}@127.0.0.1:{cfg.redis_port}/0"
        assert comps[name].env["DSXCONNECT_SCANNER__SCAN_BINARY_URL"] == f"{cfg.dsxa_url}/scan/binary/v2"
    assert password not in " ".join(comps["redis"].argv)  # in redis.conf (0600), not on the command line
    conf = cfg.run_dir / "redis" / "redis.conf"
    assert conf.read_text() == f"requirepass {password}\n" and conf.stat().st_mode & 0o777 == 0o600
    assert "DSXCONNECT_REDIS_URL" not in comps["filesystem"].env
    assert comps["filesystem"].env["DSXCONNECTOR_ASSET"] == str(cfg.sample_dir)
    assert comps["filesystem"].env["DSXCONNECTOR_ITEM_ACTION_MOVE_METAINFO"] == str(cfg.quarantine_dir)
    assert "--pool prefork --concurrency 2" in " ".join(comps["worker-scan"].argv)
    assert "--pool solo" in " ".join(comps["worker-result"].argv)
    assert "--workers" not in comps["core"].argv  # one API process unless asked


@pytest.mark.unit
def test_the_core_api_runs_the_uvicorn_workers_asked_for(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DSX_REDIS_SERVER", sys.executable)
    cfg = replace(config(tmp_path), core_workers=2)
    core = next(c for stage in graph.components(cfg) for c in stage if c.name == "core")

    assert core.argv[-2:] == ("--workers", "2")
    assert f"--port {cfg.core_port} " in " ".join(core.argv) + " "  # still found by its marks


@pytest.mark.unit
def test_summary_line_ranks_verdicts_and_counts_quarantined_files() -> None:
    job = {"processed": 12, "verdicts": {"Malicious": 2, "Benign": 10, "Unknown": 0}, "errors": 0}
    assert scan.summarize(job, 2) == "scanned 12: 10 Benign, 2 Malicious; quarantined 2"
    assert scan.summarize(job | {"errors": 1}, 1).endswith("; quarantined 1; 1 errors")


# --------------------------------------------------------------------------- real processes


def blocker(marker: str, with_child: bool = False) -> procs.Component:
    """A process that waits until it is signalled (and, optionally, a child that does the same)."""
    code = "import os, signal\n"
    if with_child:  # a forked child in the same process group, that the group stop must also end
        code += "os.fork()\n"
    code += "signal.pause()\n"
    return procs.Component(f"blocker-{marker}", (sys.executable, "-c", code, marker), marks=(marker,))


@pytest.mark.integration
def test_stop_ends_the_whole_process_group(tmp_path: Path) -> None:
    comp = blocker("stack-test-group", with_child=True)
    record = procs.spawn(tmp_path, comp, 0)

    def child_started() -> list[int]:
        members = procs.group_members(record["pid"])
        return members if len(members) == 2 else []

    members = procs.wait_until(child_started, 15, "the blocker's child")
    assert scan.status(tmp_path)[0].ok

    stopped = procs.stop(procs.read_records(tmp_path), timeout=2, out=lambda _line: None)

    assert stopped == ["blocker-stack-test-group"]
    assert not any(procs.is_running(pid) for pid in members)
    assert list((tmp_path / "pids").iterdir()) == []


@pytest.mark.integration
@pytest.mark.parametrize("tamper", [{"marks": ["another-command"]}, {"start_ticks": "1"}])
def test_down_leaves_alone_a_pid_that_is_no_longer_ours(tmp_path: Path, tamper: dict[str, object]) -> None:
    record = procs.spawn(tmp_path, blocker("stack-test-foreign"), 0)
    path = Path(record.pop("record_path"))
    path.write_text(json.dumps(record | tamper))  # as if the PID now belonged to another program
    try:
        lines: list[str] = []
        assert scan.down(tmp_path, out=lines.append) == []

        assert procs.is_running(record["pid"])
        assert not path.exists()
        assert any("is no longer ours, left alone" in line for line in lines)
        assert scan.status(tmp_path) == []
    finally:
        os.kill(record["pid"], signal.SIGTERM)


@pytest.mark.integration
def test_redis_component_starts_answers_status_and_stops(tmp_path: Path) -> None:
    cfg = config(tmp_path)
    redis = graph.components(cfg)[0][0]
    (cfg.run_dir / "redis").mkdir(parents=True, exist_ok=True)
    record = procs.spawn(cfg.run_dir, redis, 0)
    try:
        probes.wait_ready(redis, record, 15)
        [health] = scan.status(cfg.run_dir)
        assert (health.name, health.ok) == ("redis", True)
        assert not probes.port_free(cfg.redis_port)
        # the password is required: without it, or with a wrong one, Redis answers nothing but NOAUTH
        assert not probes.redis_ping(cfg.redis_port)
        assert not probes.redis_ping(cfg.redis_port, password="wrong")
        assert probes.redis_ping(cfg.redis_port, password=auth.stack_secrets(cfg.run_dir)["redis_password"])
    finally:
        scan.down(cfg.run_dir, out=lambda _line: None)
    assert not procs.is_running(record["pid"])
    assert probes.port_free(cfg.redis_port)


@pytest.mark.unit
def test_a_secrets_file_from_before_the_redis_password_keeps_its_keys(tmp_path: Path) -> None:
    old = {"enrollment_token": "e" * 32, "operator_key": "o" * 32, "server_key": "s" * 32}
    (tmp_path / auth.AUTH_FILE).write_text(json.dumps(old))
    found = auth.stack_secrets(tmp_path)
    assert {k: found[k] for k in old} == old and len(found["redis_password"]) >= 24
    assert auth.stack_secrets(tmp_path) == found  # generated once, then kept
    assert (tmp_path / auth.AUTH_FILE).stat().st_mode & 0o777 == 0o600


@pytest.mark.integration
def test_status_and_down_wrappers_on_an_empty_run_dir(tmp_path: Path) -> None:
    env = base_env(DSX_RUN_DIR=str(tmp_path))
    status = subprocess.run(
        ["bash", "scripts/stack-status.sh"], cwd=REPO_ROOT, env=env, capture_output=True, text=True
    )
    down = subprocess.run(
        ["bash", "scripts/stack-down.sh"], cwd=REPO_ROOT, env=env, capture_output=True, text=True
    )

    assert status.returncode == 1
    assert f"nothing running from {tmp_path}" in status.stdout
    assert down.returncode == 0, down.stderr


# --------------------------------------------------------------------------- an external scanner

EXTERNAL = "http://dsxa.example.test:5000/scan/binary/v2"


@pytest.mark.unit
def test_an_exported_scanner_url_replaces_dsxa_lite(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DSX_REDIS_SERVER", sys.executable)
    env = {"DSX_RUN_DIR": str(tmp_path), "DSXCONNECT_SCANNER__SCAN_BINARY_URL": EXTERNAL}
    cfg = settings.StackConfig.from_env(env)
    comps = {c.name: c for stage in graph.components(cfg) for c in stage}

    assert (cfg.scanner_url, cfg.start_dsxa) == (EXTERNAL, False)
    assert "dsxa" not in comps
    for name in ("core", "worker-scan"):
        assert comps[name].env["DSXCONNECT_SCANNER__SCAN_BINARY_URL"] == EXTERNAL


@pytest.mark.unit
def test_dsx_dsxa_starts_dsxa_lite_beside_an_external_scanner(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DSX_REDIS_SERVER", sys.executable)
    env = {"DSX_RUN_DIR": str(tmp_path), "DSXCONNECT_SCANNER__SCAN_BINARY_URL": EXTERNAL, "DSX_DSXA": "1"}
    comps = {c.name: c for stage in graph.components(settings.StackConfig.from_env(env)) for c in stage}

    assert "dsxa" in comps
    assert comps["core"].env["DSXCONNECT_SCANNER__SCAN_BINARY_URL"] == EXTERNAL


@pytest.mark.unit
def test_a_scanner_url_that_is_not_http_is_refused_naming_the_variable() -> None:
    with pytest.raises(errors.StackError, match="DSXCONNECT_SCANNER__SCAN_BINARY_URL='dsxa:5000'"):
        settings.StackConfig.from_env({"DSXCONNECT_SCANNER__SCAN_BINARY_URL": "dsxa:5000"})


@pytest.mark.integration
def test_up_stops_before_starting_anything_when_the_external_scanner_does_not_answer(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DSX_REDIS_SERVER", sys.executable)
    silent = f"http://127.0.0.1:{free_port()}/scan/binary/v2"
    cfg = replace(config(tmp_path), scanner_url=silent, start_dsxa=False)

    with pytest.raises(
        errors.StackError, match=rf"DSXCONNECT_SCANNER__SCAN_BINARY_URL={silent} does not answer"
    ):
        scan.up(cfg, out=lambda _line: None)
    assert not (cfg.run_dir / "pids").exists() or not any((cfg.run_dir / "pids").iterdir())


@pytest.mark.integration
def test_the_scanner_check_reports_a_refused_token(tmp_path: Path) -> None:
    from tests.dsxa_lite.servers import running_scanner

    with running_scanner("external", {"DSXA_LITE_AUTH_TOKEN": "right-token-123"}, tmp_path) as scanner:
        cfg = replace(config(tmp_path), scanner_url=f"{scanner.url}/scan/binary/v2", start_dsxa=False)
        with pytest.raises(errors.StackError, match="answered 401"):
            probes.check_scanner(cfg, {"DSXCONNECT_SCANNER__AUTH_TOKEN": "wrong-token-456"})
        assert probes.check_scanner(cfg, {"DSXCONNECT_SCANNER__AUTH_TOKEN": "right-token-123"}) == "Benign"


@pytest.mark.unit
@pytest.mark.parametrize(
    ("name", "value", "url"),
    [
        (
            "DSXCONNECT_SCANNER__SCAN_BINARY_URL",
            "https://dsxa.test/scan/binary/v2",
            "https://dsxa.test/scan/binary/v2",
        ),
        ("DSXCONNECT_SCANNER__BASE_URL", "http://dsxa.test:5000/", "http://dsxa.test:5000/scan/binary/v2"),
        ("DSXA_SCANNER_URL", "http://dsxa.test:5000", "http://dsxa.test:5000/scan/binary/v2"),
        ("DSXA_SCANNER_URL", "http://dsxa.test:5000/scan/binary/v2", "http://dsxa.test:5000/scan/binary/v2"),
    ],
)
def test_every_name_the_core_reads_a_scanner_url_from_is_honoured(name: str, value: str, url: str) -> None:
    cfg = settings.StackConfig.from_env({name: value})
    assert (cfg.scanner_url, cfg.start_dsxa, cfg.scan_binary_url) == (url, False, url)
