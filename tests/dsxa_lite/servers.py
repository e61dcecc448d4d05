"""Real dsxa_lite processes for integration tests: uvicorn on a free port, always stopped."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from tests.support.procs import ServiceProcess, base_env, free_port, uvicorn_argv

APP = "dsxa_lite.app:app"
TOKEN = "s3cret-scanner-token"
# small limits so that spooling, windows and the size limit are reached with small bodies
SMALL_LIMITS = {
    "DSXA_LITE_SPOOL_THRESHOLD_BYTES": str(64 * 1024),
    "DSXA_LITE_YARA_WINDOW_BYTES": str(256 * 1024),
    "DSXA_LITE_YARA_WINDOW_OVERLAP_BYTES": str(4 * 1024),
    "DSXA_LITE_MAX_FILE_SIZE_BYTES": str(4 * 1024 * 1024),
}
BLOCKED_BY_ENV = b"blocked through DSXA_LITE_BLOCKLIST\n"
BLOCKED_BY_FILE = b"blocked through DSXA_LITE_BLOCKLIST_FILE\n"


@dataclass
class Scanner:
    """A running scanner: its base URL and its process (with the log file)."""

    url: str
    process: ServiceProcess

    def log(self) -> str:
        return self.process.log_path.read_text(errors="replace")


@contextmanager
def running_scanner(
    name: str, env: dict[str, str], log_dir: Path, http: str = "httptools"
) -> Iterator[Scanner]:
    """Start ``uvicorn dsxa_lite.app:app`` with ``env``; wait for /healthz; always stop it."""
    port = free_port()
    argv = [*uvicorn_argv(APP, port), "--http", http]
    process = ServiceProcess(f"{name}-{port}", argv, base_env(**env), log_dir)
    process.start()
    try:
        url = f"http://127.0.0.1:{port}"
        process.wait_healthy(f"{url}/healthz")
        yield Scanner(url, process)
    finally:
        process.stop()
