"""The component graph of ``make up``: which services, in what order, with which environment."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import replace
from pathlib import Path

from devstack.auth import auth_env, redis_config
from devstack.emulators import cloud_emulator, redis_server_binary, rsyslog_component, syslog_feed_env
from devstack.errors import StackError
from devstack.procs import Component
from devstack.settings import API_PREFIX, CONNECTOR_PREFIX, StackConfig

CELERY_APP = "dsx_connect.workers.celery_app:celery_app"
WORKER_QUEUES = {  # worker node short name -> the one queue it consumes
    "scan": "scan_request_queue",
    "action": "verdict_action_queue",
    "result": "scan_result_queue",
    "notify": "scan_result_notification_queue",
}
# DSX_SMALL_DEPLOYMENT=1: one process consumes the three light queues (they stay separate queues)
SMALL_WORKER_QUEUES = {
    "scan": "scan_request_queue",
    "light": "verdict_action_queue,scan_result_queue,scan_result_notification_queue",
}
_CERT_NAMES = {"core": "dsx-connect-api", "dsxa": "dsxa-lite"}


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
    if cfg.core_workers > 1:  # uvicorn's own workers: one listening socket, one process each
        core = replace(core, argv=(*core.argv, "--workers", str(cfg.core_workers)))
    first: list[Component] = [redis]
    if cfg.syslog_port:  # DSX_SYSLOG=1: a local rsyslogd receives the scan-result feed
        first.append(rsyslog_component(cfg))
        core_env.update(syslog_feed_env(cfg))
    queues = (
        SMALL_WORKER_QUEUES if os.environ.get("DSX_SMALL_DEPLOYMENT", "").strip() == "1" else WORKER_QUEUES
    )
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


def cert_name(component: str) -> str:
    """The certificate a component serves with: the 1.x service names of ``inv certs``."""
    return _CERT_NAMES.get(component) or component.replace("_", "-") + "-connector"


def ensure_certs(cfg: StackConfig) -> Path:
    """``certs/`` of the run: a dev CA and one certificate per HTTPS listener (made once, devstack.certs)."""
    folder = cfg.run_dir / "certs"
    names = [cert_name("core"), cert_name("dsxa"), cert_name(cfg.connector)]
    wanted = [folder / "ca.crt", *(folder / f"{n}.{ext}" for n in names for ext in ("crt", "key"))]
    if not all(path.is_file() for path in wanted):
        from devstack.certs import make_certs  # cryptography (the cloud extra): only with DSX_TLS

        try:
            make_certs(folder, names)
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


def cloud_components(cfg: StackConfig, connector_env: Mapping[str, str]) -> tuple[Component, Component]:
    """The emulator of a cloud connector, and the connector over the sample bucket in it."""
    emulator, env = cloud_emulator(cfg, connector_env)
    choice = cfg.choice
    connector = _web(
        cfg, cfg.connector, choice.app, cfg.connector_port, "DSX_CONNECTOR_PORT", f"{choice.prefix}/healthz"
    )
    return emulator, replace(connector, env=env)
