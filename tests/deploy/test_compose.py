"""Compose files: `docker-compose config -q` with the env examples, and what each service must have."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
import yaml

from connectors.manifest import manifests
from deploy.docker import entrypoint
from tests.deploy.conftest import COMPOSE_DIR, SECRET_NAME, SERVICE_PORTS
from tests.support.emulators import missing

CORE_FILE = COMPOSE_DIR / "docker-compose-dsx-connect-all-services.yaml"
WORKERS = {
    "dsx_connect_scan_request_worker": "scan_request_queue",
    "dsx_connect_verdict_action_worker": "verdict_action_queue",
    "dsx_connect_results_worker": "scan_result_queue",
    "dsx_connect_notification_worker": "scan_result_notification_queue",
}
#: compose file stem -> (service, package, route), from connectors/<package>/manifest.py
CONNECTORS = {
    m.stem: (m.name.replace("-", "_"), f"connectors/{m.package}", m.name) for m in manifests().values()
}


def compose_copy(workdir: Path) -> Path:
    """The compose folder copied to ``workdir``, with a ``core.env`` from its example; returns it."""
    shutil.copytree(COMPOSE_DIR, workdir, dirs_exist_ok=True)
    env_file = workdir / "core.env"
    shutil.copyfile(COMPOSE_DIR / "core.env.example", env_file)
    return env_file


def load(path: Path) -> dict[str, Any]:
    return yaml.safe_load(path.read_text())


def all_compose_files() -> list[Path]:
    return sorted(COMPOSE_DIR.glob("docker-compose-*.yaml"))


# ---------------------------------------------------------------- docker-compose config


@pytest.mark.integration
def test_every_compose_file_passes_docker_compose_config(tasks_module: ModuleType, tmp_path: Path) -> None:
    if shutil.which("docker-compose") is None:
        missing("docker-compose is not installed (Debian: apt-get install docker-compose; make test does it)")
    pairs = tasks_module.compose_files()
    checked = {file for _, files in pairs for file in files}
    assert checked == set(all_compose_files()), "a compose file is not in tasks.COMPONENTS"

    def check(index: int) -> str:
        env, files = pairs[index]
        result = tasks_module.compose_config(env, files, tmp_path / str(index))
        names = " + ".join(f.name for f in files)
        return "" if result.returncode == 0 else f"{names} with {env.name}: {result.stderr}"

    with ThreadPoolExecutor(max_workers=4) as pool:  # each run is a separate docker-compose process
        failures = [message for message in pool.map(check, range(len(pairs))) if message]
    assert not failures, "\n".join(failures)


# ---------------------------------------------------------------- the core file


@pytest.mark.unit
def test_core_services_and_profiles() -> None:
    services = load(CORE_FILE)["services"]
    assert set(services) == {"dsx_connect_api", "redis", "dsxa_lite", "rsyslog", "postgres", *WORKERS}
    assert services["dsxa_lite"]["profiles"] == ["dsxa"]
    assert services["rsyslog"]["profiles"] == ["rsyslog"]
    assert services["postgres"]["profiles"] == ["postgres"]
    api = services["dsx_connect_api"]
    assert api["command"] == ["api"]
    assert api["ports"] == ["${DSXCONNECT_API_HOST_PORT:-8586}:8586"]
    assert "dsx-connect-api" in api["networks"]["dsx-network"]["aliases"]
    assert "dsxa-lite" in services["dsxa_lite"]["networks"]["dsx-network"]["aliases"]


@pytest.mark.unit
def test_one_worker_per_queue_with_the_stack_pools() -> None:
    services = load(CORE_FILE)["services"]
    for name, queue in WORKERS.items():
        command = [
            part.replace("${DSXCONNECT_SCAN_REQUEST_WORKER_CONCURRENCY:-2}", "2")
            for part in services[name]["command"]
        ]
        assert command[:2] == ["worker", queue], name
        _, argv = entrypoint.command(command, {})
        pool = argv[argv.index("--pool") + 1]
        if queue == "scan_request_queue":
            assert (pool, argv[argv.index("--concurrency") + 1]) == ("prefork", "2")
        else:
            assert pool == "solo" and "--concurrency" not in argv, name
        assert services[name]["healthcheck"]["test"] == ["CMD", "dsx-healthcheck", "worker"]


@pytest.mark.unit
def test_redis_is_persistent_with_aof_and_gates_the_core() -> None:
    compose = load(CORE_FILE)
    redis = compose["services"]["redis"]
    command = redis["command"]
    assert command[command.index("--appendonly") + 1] == "yes"
    assert command[command.index("--appendfsync") + 1] == "everysec"
    assert "redis-data:/data" in redis["volumes"] and "redis-data" in compose["volumes"]
    assert "PONG" in " ".join(redis["healthcheck"]["test"])
    for name in ("dsx_connect_api", *WORKERS):
        assert compose["services"][name]["depends_on"] == {"redis": {"condition": "service_healthy"}}, name


@pytest.mark.unit
def test_redis_has_a_memory_bound_and_never_evicts() -> None:
    """A full Redis refuses writes (the core answers 503 with Retry-After) instead of evicting queued
    tasks, results or leases, and stays under the host's memory (docs/reliability.md)."""
    nodes = [("core", load(CORE_FILE)["services"]["redis"])]
    sentinel = load(SENTINEL_FILE)["services"]
    nodes += [(name, sentinel[name]) for name in ("redis", "redis-replica")]  # either may be primary
    for name, node in nodes:
        command = node["command"]
        assert command[command.index("--maxmemory") + 1] == "${REDIS_MAXMEMORY:-1gb}", name
        assert command[command.index("--maxmemory-policy") + 1] == "noeviction", name
    example = (COMPOSE_DIR / "core.env.example").read_text()
    assert re.search(r"^# REDIS_MAXMEMORY=1gb$", example, re.M)


@pytest.mark.unit
@pytest.mark.parametrize("path", all_compose_files(), ids=lambda p: p.name)
def test_services_are_healthchecked_hardened_and_on_the_shared_network(path: Path) -> None:
    compose = load(path)
    if "networks" in compose:
        network = compose["networks"]["dsx-network"]
        assert network["external"] is True
        assert network["name"] == "${DSX_DOCKER_NETWORK:-dsx-connect-network}"
    for name, service in compose["services"].items():
        if path.name.endswith(".secrets.yaml"):  # an override: merged onto the core file's services
            assert set(service) <= {"environment", "secrets"}
            continue
        if path.name.endswith(".sentinel.yaml") and name.startswith("dsx_connect_"):  # likewise
            assert set(service) <= {"environment", "depends_on"}
            continue
        if name in ("redis", "postgres") or name.startswith(("redis-replica", "redis-sentinel")):
            # on the core's own network only (test_redis_..., test_postgres_...)
            assert list(service["networks"]) == ["redis-network"]
            if name != "postgres":  # checked before the core starts
                assert "redis-cli" in " ".join(service.get("healthcheck", {}).get("test", [])), name
            continue
        assert "dsx-network" in service["networks"], name
        assert not str(service["image"]).rstrip("}").endswith(":latest"), f"{name}: pin the image's tag"
        if name == "rsyslog":  # no health check (it answers no request); hardened all the same
            assert service.get("cap_drop") == ["ALL"], name
            assert set(service.get("cap_add", [])) <= {"NET_BIND_SERVICE"}, name  # port 514
            assert "no-new-privileges:true" in service.get("security_opt", []), name
            continue
        assert service["healthcheck"]["test"][0] in ("CMD", "CMD-SHELL"), name
        if service["image"].startswith(("${REDIS_IMAGE", "${DSXA_IMAGE")):  # vendor images run as they expect
            continue
        assert service.get("cap_drop") == ["ALL"], name
        assert "no-new-privileges:true" in service.get("security_opt", []), name
        assert service.get("env_file"), f"{name}: settings come from the env file"
        if name == "dsxa_lite":  # never the core's env file: it holds every core secret
            assert service["env_file"] == SCANNER_ENV_FILE, path.name


@pytest.mark.unit
@pytest.mark.parametrize("path", all_compose_files(), ids=lambda p: p.name)
def test_no_secret_is_written_in_a_compose_file(path: Path) -> None:
    """Secret variables are interpolated from the env file or read from Docker secrets, never inlined."""
    for name, service in load(path)["services"].items():
        environment = service.get("environment") or {}
        assert isinstance(environment, dict), f"{name}: environment as a mapping"
        for key, value in environment.items():
            if SECRET_NAME.search(key):
                assert re.fullmatch(r"\$\{[A-Z0-9_]+(:-)?\}", str(value)), f"{name}: {key}={value!r}"
            if key.endswith("_FILE") and SECRET_NAME.search(key.removesuffix("_FILE")):
                assert str(value).startswith("/run/secrets/"), f"{name}: {key}"


@pytest.mark.unit
@pytest.mark.parametrize("stem", CONNECTORS)
def test_connector_files_use_the_spec_names_and_ports(stem: str) -> None:
    service_name, package, route = CONNECTORS[stem]
    port = SERVICE_PORTS[package]
    path = COMPOSE_DIR / f"docker-compose-{stem}-connector.yaml"
    service = load(path)["services"][service_name]
    assert service["ports"] == [f"${{{stem.upper().replace('-', '_')}_HOST_PORT:-{port}}}:{port}"]
    assert service["healthcheck"]["test"] == ["CMD", "dsx-healthcheck", "http", str(port), "/healthz"]
    assert route in service["networks"]["dsx-network"]["aliases"]
    env = service["environment"]
    assert env["DSXCONNECTOR_CONNECTOR_URL"].endswith(f":-http://{route}:{port}/{route}}}")
    assert env["DSXCONNECTOR_DSX_CONNECT_URL"].endswith(":-http://dsx-connect-api:8586}")
    assert service["image"].startswith(f"${{{stem.upper().replace('-', '_')}_IMAGE:-dsxconnect/{route}:")
    assert service["env_file"] == [f"${{{stem.upper().replace('-', '_')}_ENV_FILE:-{stem}.env}}"]


@pytest.mark.unit
def test_secrets_override_covers_every_core_service() -> None:
    override = load(COMPOSE_DIR / "docker-compose-dsx-connect.secrets.yaml")
    assert set(override["services"]) == {"dsx_connect_api", "dsxa_lite", *WORKERS}
    # the `dsxa` profile's scanner asks for the token the core sends: the same secret, nothing else
    scanner = override["services"]["dsxa_lite"]
    assert scanner["environment"] == {"DSXA_LITE_AUTH_TOKEN_FILE": "/run/secrets/scanner_auth_token"}
    assert scanner["secrets"] == ["scanner_auth_token"]
    assert (
        override["services"]["dsx_connect_api"]["environment"]["DSXCONNECT_SCANNER__AUTH_TOKEN_FILE"]
        == "/run/secrets/scanner_auth_token"
    )
    for service in override["services"].values():
        for key, path in service["environment"].items():
            name = key.removesuffix("_FILE")
            assert name in entrypoint.SECRET_VARS, f"{name}: dsx-entrypoint would not read {key}"
            secret = path.removeprefix("/run/secrets/")
            assert secret in service["secrets"] and secret in override["secrets"]


# ---------------------------------------------------------------- the scanner container

SCANNER_FILES = [CORE_FILE, COMPOSE_DIR / "docker-compose-dsxa-lite.yaml"]
SCANNER_ENV_FILE = ["${DSXA_LITE_ENV_FILE:-dsxa-lite.env}"]
#: what must never reach the container that unpacks untrusted archives
CORE_SECRET = re.compile(r"^(DSXCONNECT_AUTH__|DSXCONNECT_REDIS_URL$|REDIS_PASSWORD$|REDISCLI_AUTH$)")


@pytest.mark.unit
@pytest.mark.parametrize("path", SCANNER_FILES, ids=lambda p: p.name)
def test_the_scanner_has_its_own_env_file_and_a_read_only_root(path: Path) -> None:
    """dsxa_lite unpacks untrusted archives: none of the core's secrets, no writable image."""
    scanner = load(path)["services"]["dsxa_lite"]
    assert scanner["env_file"] == SCANNER_ENV_FILE
    assert scanner["read_only"] is True
    writable = [*scanner.get("tmpfs", []), *(str(v).split(":")[1] for v in scanner.get("volumes", []))]
    assert "/tmp" in writable, "the spool (unnamed temp files) needs a writable /tmp"
    if path == CORE_FILE:  # the token the core sends, interpolated: the only value from core.env
        assert scanner["environment"] == {"DSXA_LITE_AUTH_TOKEN": "${DSXCONNECT_SCANNER__AUTH_TOKEN:-}"}


@pytest.mark.integration
def test_the_rendered_scanner_gets_none_of_the_cores_secrets(
    tasks_module: ModuleType, tmp_path: Path
) -> None:
    """core.env as make_secrets.py fills it, the `dsxa` profile on, with and without the secrets overlay."""
    if shutil.which("docker-compose") is None:
        missing("docker-compose is not installed (Debian: apt-get install docker-compose)")
    env_file = compose_copy(tmp_path)
    with env_file.open("a") as fh:
        fh.write("DSXCONNECT_SCANNER__AUTH_TOKEN=scan-t0ken\nCOMPOSE_PROFILES=dsxa\n")
    tasks_module.compose_secrets().fill(env_file)
    assert (tmp_path / "dsxa-lite.env").is_file(), "make_secrets.py makes the scanner's env file"
    secrets = tasks_module.compose_secrets_values(env_file)
    plain = _rendered(tasks_module, tmp_path, env_file, CORE_FILE)
    overlay = _rendered(
        tasks_module, tmp_path, env_file, CORE_FILE, COMPOSE_DIR / "docker-compose-dsx-connect.secrets.yaml"
    )
    for compose in (plain, overlay):
        scanner = compose["services"]["dsxa_lite"]
        environment = scanner.get("environment") or {}
        leaked = sorted(key for key in environment if CORE_SECRET.match(key))
        assert not leaked, f"the scanner gets {leaked}"
        assert not any(value in yaml.safe_dump(scanner) for value in secrets.values())
        assert scanner["read_only"] is True
        # and the core still gets its own
        assert compose["services"]["dsx_connect_api"]["environment"]["DSXCONNECT_AUTH__SERVER_KEY"]
    assert plain["services"]["dsxa_lite"]["environment"]["DSXA_LITE_AUTH_TOKEN"] == "scan-t0ken"
    secret_scanner = overlay["services"]["dsxa_lite"]
    assert secret_scanner["environment"]["DSXA_LITE_AUTH_TOKEN_FILE"] == "/run/secrets/scanner_auth_token"
    assert [s["source"] if isinstance(s, dict) else s for s in secret_scanner["secrets"]] == [
        "scanner_auth_token"
    ]


@pytest.mark.unit
def test_the_overlays_scanner_token_file_is_read_by_the_entrypoint(tmp_path: Path) -> None:
    """With the overlay, DSXA_LITE_AUTH_TOKEN interpolates to '' and the file fills it."""
    token = tmp_path / "scanner_auth_token"
    token.write_text("scan-t0ken\n")
    env = {"DSXA_LITE_AUTH_TOKEN": "", "DSXA_LITE_AUTH_TOKEN_FILE": str(token)}
    assert entrypoint.resolve_secret_files(env) == ["DSXA_LITE_AUTH_TOKEN"]
    assert env["DSXA_LITE_AUTH_TOKEN"] == "scan-t0ken"


# ---------------------------------------------------------------- 1.x compatibility (issue 17)


@pytest.mark.unit
def test_the_dsxa_appliance_file_serves_the_documented_scanner_url() -> None:
    compose = load(COMPOSE_DIR / "docker-compose-dsxa.yaml")
    scanner = compose["services"]["dsxa_scanner"]
    assert scanner["ports"] == ["${DSXA_HOST_PORT:-5000}:5000"]
    assert scanner["image"].startswith("${DSXA_IMAGE:-")
    assert {"APPLIANCE_URL", "TOKEN", "SCANNER_ID"} <= set(scanner["environment"])
    assert "dsxa_scanner" in scanner["networks"]["dsx-network"]["aliases"]
    # http://dsxa_scanner:5000/scan/binary/v2 is a URL the core accepts
    from dsx_connect.settings import ScannerSettings

    url = "http://dsxa_scanner:5000/scan/binary/v2"
    assert ScannerSettings(scan_binary_url=url).scan_binary_url == url
    assert (
        "DSXCONNECT_SCANNER__SCAN_BINARY_URL=http://dsxa_scanner:5000/scan/binary/v2"
        in (COMPOSE_DIR / "core.env.example").read_text()
    )


@pytest.mark.unit
def test_the_core_sends_its_feed_to_the_rsyslog_profile_with_no_other_setting(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """As 1.x: the core's environment names `syslog:514`, the rsyslog service's alias and port."""
    from dsx_connect.settings import Settings
    from shared.settings import load_settings

    compose = load(CORE_FILE)
    rsyslog = compose["services"]["rsyslog"]
    assert "syslog" in rsyslog["networks"]["dsx-network"]["aliases"]
    conf = (COMPOSE_DIR / "rsyslog" / "rsyslog.conf").read_text()
    assert 'input(type="imtcp" port="514")' in conf
    for name in ("dsx_connect_api", *WORKERS):
        env = compose["services"][name]["environment"]
        resolved = {k: re.sub(r"\$\{[A-Z0-9_]+:-([^}]*)\}", r"\1", str(v)) for k, v in env.items()}
        for key in list(os.environ):
            if key.startswith("DSXCONNECT_"):
                monkeypatch.delenv(key)
        for key, value in resolved.items():
            monkeypatch.setenv(key, value)
        monkeypatch.setenv("DSXCONNECT_AUTH__ENABLED", "false")
        settings = load_settings(Settings, _env_file=None)
        assert settings.superlog.active == ["syslog"], name
        assert (settings.syslog.host, settings.syslog.port, settings.syslog.transport) == (
            "syslog",
            514,
            "tcp",
        )


@pytest.mark.integration
def test_the_rsyslog_profiles_collector_writes_the_feeds_lines(tmp_path: Path) -> None:
    """The profile's own rsyslog.conf, run by a real rsyslogd (port and folder moved), receives the feed."""
    import json as _json

    from devstack.emulators import rsyslogd
    from dsx_connect.superlog.config import SyslogSettings
    from dsx_connect.superlog.syslog import SyslogSink
    from tests.dsx_connect.superlog.conftest import scan_event
    from tests.dsx_connect.superlog.peers import RSYSLOGD
    from tests.support.procs import free_port, wait_for

    if RSYSLOGD is None:
        missing("rsyslogd is not installed: apt-get install rsyslog (scripts/deps/apt-packages.txt)")
    port = free_port()
    conf = (COMPOSE_DIR / "rsyslog" / "rsyslog.conf").read_text()
    conf = conf.replace('port="514"', f'port="{port}" address="127.0.0.1"').replace(
        "/var/log/dsx-connect", str(tmp_path)
    )
    conf = conf.replace('*.* action(type="omfile" file="/dev/stdout" template="rawMsg")\n', "")
    (tmp_path / "rsyslog.conf").write_text(conf)
    with rsyslogd(tmp_path / "rsyslog.conf", tmp_path, port):  # devstack: waits until it listens
        # what the compose environment gives the core (syslog:514, tcp), pointed at this rsyslogd
        sink = SyslogSink(
            SyslogSettings(syslog_server_url="127.0.0.1", syslog_server_port=port, transport="tcp")
        )  # type: ignore[call-arg]
        sink.send([sink.encode(_json.loads(scan_event(n).model_dump_json())) for n in range(3)])
        sink.close()
        out = tmp_path / "scan-results.log"
        wait_for(lambda: out.exists() and len(out.read_text().splitlines()) == 3, timeout=10, what="3 lines")
        events = [_json.loads(line) for line in out.read_text().splitlines()]  # the template keeps %msg%
        assert [(e["source"], e["scan_request"]["location"]) for e in events] == [
            ("dsx-connect", f"docs/file-{n}.txt") for n in range(3)
        ]
        assert events[0]["verdict"]["verdict"] == "Malicious"


@pytest.mark.integration
def test_the_dsxa_appliance_file_also_passes_docker_compose_config_on_its_own(
    tasks_module: ModuleType, tmp_path: Path
) -> None:
    if shutil.which("docker-compose") is None:
        missing("docker-compose is not installed (Debian: apt-get install docker-compose; make test does it)")
    result = tasks_module.compose_config(
        COMPOSE_DIR / "core.env.example", [COMPOSE_DIR / "docker-compose-dsxa.yaml"], tmp_path
    )
    assert result.returncode == 0, result.stderr


# ---------------------------------------------------------------- safe defaults (SPEC §8)

REQUIRED_PASSWORD = re.compile(r"\$\{REDIS_PASSWORD:\?[^}]+\}")


@pytest.mark.unit
def test_redis_requires_a_password_and_sits_on_the_core_network_only() -> None:
    compose = load(CORE_FILE)
    services, networks = compose["services"], compose["networks"]
    redis = services["redis"]
    command = redis["command"]
    assert REQUIRED_PASSWORD.fullmatch(command[command.index("--requirepass") + 1])
    assert REQUIRED_PASSWORD.fullmatch(redis["environment"]["REDISCLI_AUTH"])  # its health check
    assert "PONG" in " ".join(redis["healthcheck"]["test"])
    assert list(redis["networks"]) == ["redis-network"]
    assert networks["redis-network"]["internal"] is True and "external" not in networks["redis-network"]
    for name in ("dsx_connect_api", *WORKERS):
        service = services[name]
        assert {"dsx-network", "redis-network"} <= set(service["networks"]), name
        url = service["environment"]["DSXCONNECT_REDIS_URL"]
        assert REQUIRED_PASSWORD.search(url) and url.startswith("${REDIS_SCHEME:-redis}://:"), name
    for name in ("dsxa_lite", "rsyslog"):
        assert "redis-network" not in services[name]["networks"], name


# ---------------------------------------------------------------- the results history (issue 16)

RESULTS_DB = "postgresql://dsx:pg-s3cret@postgres:5432/dsx"


@pytest.mark.unit
def test_the_postgres_profile_keeps_the_history_on_a_volume_on_the_core_network() -> None:
    compose = load(CORE_FILE)
    postgres = compose["services"]["postgres"]
    assert postgres["image"] == "${POSTGRES_IMAGE:-postgres:16-alpine}"
    assert (
        "postgres-data:/var/lib/postgresql/data" in postgres["volumes"]
        and "postgres-data" in compose["volumes"]
    )
    assert list(postgres["networks"]) == ["redis-network"]  # internal: the core only, as Redis
    env = postgres["environment"]
    assert env["POSTGRES_PASSWORD"] == "${POSTGRES_PASSWORD:-}"  # the image refuses to start without one
    assert (env["POSTGRES_USER"], env["POSTGRES_DB"]) == ("${POSTGRES_USER:-dsx}", "${POSTGRES_DB:-dsx}")
    assert "pg_isready" in " ".join(postgres["healthcheck"]["test"])
    for name in ("dsx_connect_api", *WORKERS):  # every core process reads the same store
        assert (
            compose["services"][name]["environment"]["DSXCONNECT_RESULTS_DB"]
            == "${DSXCONNECT_RESULTS_DB:-redis}"
        )
    example = (COMPOSE_DIR / "core.env.example").read_text()
    assert "DSXCONNECT_RESULTS_DB=postgresql://dsx:<POSTGRES_PASSWORD>@postgres:5432/dsx" in example


@pytest.mark.integration
def test_the_rendered_postgres_profile_gives_every_core_process_the_history_url(
    tasks_module: ModuleType, tmp_path: Path
) -> None:
    """core.env as the example documents it: the URL reaches the API and every worker and names the
    bundled server; without it the core keeps the default, redis."""
    if shutil.which("docker-compose") is None:
        missing("docker-compose is not installed (Debian: apt-get install docker-compose)")
    from dsx_connect.results.settings import ResultsBackend, ResultsDbSettings

    env_file = compose_copy(tmp_path)
    tasks_module.compose_secrets().fill(env_file)
    plain = _rendered(tasks_module, tmp_path, env_file, CORE_FILE)
    assert plain["services"]["dsx_connect_api"]["environment"]["DSXCONNECT_RESULTS_DB"] == "redis"
    with env_file.open("a") as fh:
        fh.write(f"POSTGRES_PASSWORD=pg-s3cret\nDSXCONNECT_RESULTS_DB={RESULTS_DB}\n")
    core = _rendered(tasks_module, tmp_path, env_file, CORE_FILE)
    postgres = core["services"]["postgres"]
    assert postgres["environment"]["POSTGRES_PASSWORD"] == "pg-s3cret"
    for name in ("dsx_connect_api", *WORKERS):
        url = core["services"][name]["environment"]["DSXCONNECT_RESULTS_DB"]
        assert url == RESULTS_DB, name
    config = ResultsDbSettings(url=url)
    assert config.backend is ResultsBackend.POSTGRESQL and config.durable
    assert config.sql_url == "postgresql+psycopg://dsx:pg-s3cret@postgres:5432/dsx"


@pytest.mark.unit
@pytest.mark.parametrize("stem", CONNECTORS)
def test_connectors_reach_the_api_network_but_not_redis(stem: str) -> None:
    compose = load(COMPOSE_DIR / f"docker-compose-{stem}-connector.yaml")
    assert set(compose["networks"]) == {"dsx-network"}
    assert compose["networks"]["dsx-network"]["name"] == load(CORE_FILE)["networks"]["dsx-network"]["name"]
    for name, service in compose["services"].items():
        assert list(service["networks"]) == ["dsx-network"], name
        assert not any("REDIS" in key for key in service.get("environment") or {}), name


def _rendered(tasks_module: ModuleType, tmp_path: Path, env_file: Path, *files: Path) -> dict[str, Any]:
    import subprocess

    cmd = ["docker-compose", "--env-file", str(env_file)]
    for file in files:
        cmd += ["-f", str(tmp_path / file.name)]
    result = subprocess.run(
        [*cmd, "config"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        check=False,
        env=tasks_module._compose_env(),
    )
    assert result.returncode == 0, result.stderr
    return yaml.safe_load(result.stdout)


@pytest.mark.integration
def test_the_rendered_core_and_connector_configs_keep_redis_private(
    tasks_module: ModuleType, tmp_path: Path
) -> None:
    if shutil.which("docker-compose") is None:
        missing("docker-compose is not installed (Debian: apt-get install docker-compose)")
    import subprocess

    env_file = compose_copy(tmp_path)
    config = ["docker-compose", "--env-file", str(env_file), "-f", CORE_FILE.name, "config", "-q"]
    refused = subprocess.run(
        config, cwd=tmp_path, capture_output=True, text=True, check=False, env=tasks_module._compose_env()
    )
    assert refused.returncode != 0 and "REDIS_PASSWORD is required" in refused.stderr

    tasks_module.compose_secrets().fill(env_file)
    password = tasks_module.compose_secrets_values(env_file)["REDIS_PASSWORD"]
    core = _rendered(tasks_module, tmp_path, env_file, CORE_FILE)
    redis = core["services"]["redis"]
    assert redis["command"][redis["command"].index("--requirepass") + 1] == password
    assert set(redis["networks"]) == {"redis-network"}
    assert core["networks"]["redis-network"]["name"] == "dsx-connect-redis"
    for name in ("dsx_connect_api", *WORKERS):
        assert (
            core["services"][name]["environment"]["DSXCONNECT_REDIS_URL"]
            == f"redis://:{password}@redis:6379/0"
        )
    fs_env = tmp_path / "filesystem.env"
    shutil.copyfile(COMPOSE_DIR / "filesystem.env.example", fs_env)
    connector = _rendered(
        tasks_module, tmp_path, fs_env, COMPOSE_DIR / "docker-compose-filesystem-connector.yaml"
    )
    [service] = connector["services"].values()
    assert set(service["networks"]) == {"dsx-network"}
    assert connector["networks"]["dsx-network"]["name"] == "dsx-connect-network"
    assert "dsx-connect-redis" not in yaml.safe_dump(connector)


# ---------------------------------------------------------------- the connector's key file

KEY_DIR = "/var/lib/dsx-connector"
KEY_FILE = f"{KEY_DIR}/hmac.key"


def compose_rendered(tasks_module: ModuleType, env: Path, files: list[Path], workdir: Path) -> dict[str, Any]:
    """``docker-compose config`` of ``files`` (with ``env`` as the env file), parsed."""
    shutil.copytree(COMPOSE_DIR, workdir, dirs_exist_ok=True)
    env_file = workdir / env.name.removesuffix(".example")
    shutil.copyfile(env, env_file)
    if env.name == "core.env.example":
        tasks_module.compose_secrets().fill(env_file)
    cmd = ["docker-compose", "--env-file", str(env_file)]
    for file in files:
        cmd += ["-f", str(workdir / file.name)]
    result = subprocess.run([*cmd, "config"], capture_output=True, text=True, timeout=120, check=False)
    assert result.returncode == 0, f"{[f.name for f in files]}: {result.stderr}"
    return yaml.safe_load(result.stdout)


@pytest.mark.integration
def test_every_connector_service_keeps_its_key_file_on_a_named_volume(
    tasks_module: ModuleType, tmp_path: Path
) -> None:
    """A re-created connector container finds its DSX-HMAC pair: a fleet token alone gets 409."""
    if shutil.which("docker-compose") is None:
        missing("docker-compose is not installed (Debian: apt-get install docker-compose)")
    pairs = tasks_module.compose_files()

    def connector_services(index: int) -> dict[str, tuple[str, dict[str, Any]]]:
        env, files = pairs[index]
        compose = compose_rendered(tasks_module, env, files, tmp_path / str(index))
        found = {}
        for name, service in compose["services"].items():
            environment = service.get("environment") or {}
            if any(key.startswith("DSXCONNECTOR_") for key in environment):
                found[name] = (files[-1].name, service)
                named = set(compose.get("volumes") or {})
                mounts = [str(v).split(":") for v in service.get("volumes", [])]
                sources = [m[0] for m in mounts if len(m) > 1 and m[1] == KEY_DIR]
                assert environment.get("DSXCONNECTOR_AUTH__KEY_FILE") == KEY_FILE, name
                assert sources and sources[0] in named, (
                    f"{files[-1].name} {name}: no named volume at {KEY_DIR}"
                )
        return found

    with ThreadPoolExecutor(max_workers=4) as pool:
        found: dict[str, tuple[str, dict[str, Any]]] = {}
        for part in pool.map(connector_services, range(len(pairs))):
            found.update(part)
    assert {service for service, _, _ in CONNECTORS.values()} <= set(found)


SENTINEL_FILE = COMPOSE_DIR / "docker-compose-dsx-connect.sentinel.yaml"


@pytest.mark.unit
def test_the_sentinel_overlay_has_a_replica_three_sentinels_and_the_core_follows_them() -> None:
    from dsx_connect.redis_sentinel import parse_sentinel_url

    compose = load(SENTINEL_FILE)
    services = compose["services"]
    sentinels = sorted(n for n in services if n.startswith("redis-sentinel-"))
    assert sentinels == ["redis-sentinel-1", "redis-sentinel-2", "redis-sentinel-3"]
    script = services["redis-sentinel-1"]["command"][0]
    assert "sentinel monitor dsxmaster redis 6379 2" in script  # quorum 2 of 3
    assert "sentinel auth-pass dsxmaster" in script and "requirepass" in script
    replica = services["redis-replica"]["command"]
    assert replica[replica.index("--replicaof") + 1 : replica.index("--replicaof") + 3] == ["redis", "6379"]
    for node in ("redis", "redis-replica"):  # either may be the primary after a failover
        command = services[node]["command"]
        assert "--masterauth" in command and command[command.index("--appendonly") + 1] == "yes", node
    for name in ("dsx_connect_api", *WORKERS):
        env = services[name]["environment"]
        target = parse_sentinel_url(re.sub(r"\$\{REDIS_PASSWORD[^}]*\}", "pw", env["DSXCONNECT_REDIS_URL"]))
        assert target.master == "dsxmaster" and target.db == 0 and target.password == "pw", name
        assert target.sentinel_password == "pw", name
        assert [host for host, _ in target.hosts] == sentinels, name
        assert env["DSXCONNECT_REDIS_WAIT_REPLICAS"] == "1", name
        assert services[name]["depends_on"]["redis-sentinel-1"] == {"condition": "service_healthy"}, name
