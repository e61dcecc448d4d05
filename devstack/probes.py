"""Health probes: HTTP (optionally verified against the run's CA), Redis PING, TCP accept, a log line,
a live PID; the readiness wait of a started component; the free-port checks before ``make up``."""

from __future__ import annotations

import json
import os
import socket
import ssl
import urllib.error
import urllib.request
from collections.abc import Callable, Mapping
from http.client import HTTPException
from pathlib import Path
from typing import Any, cast
from urllib.parse import urlsplit

import httpx

from devstack.auth import AUTH_FILE, api_headers
from devstack.errors import StackError, StackTimeout
from devstack.procs import Component, is_running, wait_until
from devstack.settings import StackConfig


def http_ok(url: str) -> Callable[[], bool]:
    """A check: ``url`` answers 200 (errors propagate, for :func:`devstack.procs.wait_for`)."""

    def check() -> bool:
        return httpx.get(url, timeout=2.0).status_code == 200

    return check


def status_below(limit: int, url: str) -> Callable[[], bool]:
    """A check: ``url`` answers a status below ``limit`` (an emulator answering at all)."""

    def check() -> bool:
        return httpx.get(url, timeout=2.0).status_code < limit

    return check


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
            status, raw, message = int(resp.status), resp.read(), resp.headers
    except urllib.error.HTTPError as exc:
        status, raw, message = exc.code, exc.read(), exc.headers
    answered = cast(Mapping[str, str], message)  # an email.message.Message: case-insensitive get()
    try:
        body: Any = json.loads(raw) if raw else None
    except ValueError:
        body = raw.decode(errors="replace")
    return status, body, answered


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
