"""The one module that spawns service processes: the stack's PID supervisor and the tests' services.

Two shapes over one ``Popen``:

- :func:`spawn` / :func:`stop` / :func:`read_records`: a component of ``make up`` started in its own
  session, its PID recorded as JSON in ``pids/`` of the run directory (with its start time and marks
  of its command line) so that a later ``make down`` from another process stops it, and only it.
- :class:`ServiceProcess`: a process a test (or the benchmark) starts and stops within one fixture.

Readiness is a poll loop (:func:`wait_until`, :func:`wait_for`): tenacity or stamina would add a
dependency for ten lines whose whole job is "check, sleep, give up at a deadline with a message naming
what was awaited". psutil is installed but not used: the PID identity the records keep is the start
time in clock ticks from ``/proc/<pid>/stat`` (a ``ps`` fallback elsewhere), which psutil does not
expose as such, and the few reads here fit in a handful of lines.
"""

from __future__ import annotations

import json
import os
import random
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from devstack.errors import StackError, StackTimeout
from devstack.settings import REPO_ROOT

PYTHON = sys.executable
HAVE_PROC = Path("/proc/self/stat").exists()

T = TypeVar("T")


@dataclass(frozen=True)
class Component:
    """One process of the stack: how to start it, recognise it later, and check it.

    ``health`` and ``ready`` are probe specs: an ``http://`` URL (answers 200), ``redis://host:port``
    (answers PING), ``tcp://host:port`` (accepts a connection), ``log:TEXT`` (TEXT appeared in its log)
    or ``pid`` (the process is alive). ``marks`` are texts its command line must contain for a recorded
    PID to count as ours.
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


# --------------------------------------------------------------------------- waiting


def wait_until(check: Callable[[], T | None], timeout: float, what: str, interval: float = 0.2) -> T:
    """Poll ``check`` until it returns something truthy; StackTimeout after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() >= deadline:
            raise StackTimeout(f"timed out after {timeout:.0f}s waiting for {what}")
        time.sleep(interval)


def wait_for(
    predicate: Callable[[], object], timeout: float = 30.0, interval: float = 0.05, what: str = "condition"
) -> Any:
    """Poll ``predicate`` until it returns a truthy value, treating its exceptions as "not yet";
    TimeoutError naming ``what`` (and the last exception) after ``timeout`` seconds."""
    last_exc: Exception | None = None

    def check() -> object:
        nonlocal last_exc
        try:
            return predicate()
        except Exception as exc:
            last_exc = exc
            return None

    try:
        return wait_until(check, timeout, what, interval)
    except StackTimeout:
        raise TimeoutError(
            f"timed out after {timeout}s waiting for {what}" + (f": {last_exc}" if last_exc else "")
        ) from None


_HANDED_OUT: set[int] = set()
_PORT_SPAN = 12000


def _ephemeral_low() -> int:
    try:
        return int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return 32768


def free_port() -> int:
    """A TCP port nobody listens on right now, below the kernel's ephemeral range and not handed out
    before by this process. A server is started on it later: a port the kernel handed out (bind to 0)
    lies in the ephemeral range, where any outgoing connection, or a client's connect to a dead port
    that the kernel answers by connecting it to itself, can take it as its source port meanwhile, and
    the server's bind then fails with "address already in use"."""
    low = _ephemeral_low()
    first = max(1024, low - _PORT_SPAN)
    if len(_HANDED_OUT) > (low - first) // 2:
        _HANDED_OUT.clear()
    for _ in range(500):
        port = random.randint(first, low - 1)
        if port in _HANDED_OUT:
            continue
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
            try:
                sock.bind(("127.0.0.1", port))
            except OSError:
                continue
        _HANDED_OUT.add(port)
        return port
    raise StackError(f"no free TCP port between {first} and {low - 1}")


def uvicorn_argv(app: str, port: int, log_level: str = "warning") -> list[str]:
    """A FastAPI app under uvicorn on ``127.0.0.1:port``."""
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
        log_level,
    ]


def _popen(
    argv: Sequence[str], env: Mapping[str, str] | None, cwd: Path, log: Path | None
) -> subprocess.Popen[bytes]:
    """The one ``Popen`` of the repository: its own session, output to ``log`` (or nowhere)."""
    out = log.open("ab") if log is not None else None
    try:
        return subprocess.Popen(
            list(argv),
            cwd=cwd,
            env=dict(env) if env is not None else None,
            stdin=subprocess.DEVNULL,
            stdout=out if out is not None else subprocess.DEVNULL,
            stderr=subprocess.STDOUT if out is not None else subprocess.DEVNULL,
            start_new_session=True,
        )
    finally:
        if out is not None:
            out.close()


# --------------------------------------------------------------------------- a process of a test


class ServiceProcess:
    """A real process started for a test (or a benchmark), with its output in a log file."""

    def __init__(
        self,
        name: str,
        argv: Sequence[str],
        env: Mapping[str, str] | None,
        log_dir: Path,
        cwd: Path = REPO_ROOT,
    ) -> None:
        self.name = name
        self.argv = list(argv)
        self.env = env
        self.cwd = cwd
        self.log_path = log_dir / f"{name}.log"
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def pid(self) -> int:
        assert self.proc is not None, f"{self.name} was not started"
        return self.proc.pid

    def start(self) -> ServiceProcess:
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        self.proc = _popen(self.argv, self.env, self.cwd, self.log_path)
        return self

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def log_tail(self, lines: int = 40) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""

    def wait_ready(self, check: Callable[[], object], timeout: float = 30.0, what: str = "") -> None:
        """Wait until ``check`` passes; RuntimeError with the log's tail if it exits or times out."""

        def ready() -> object:
            if not self.alive():
                raise RuntimeError(f"{self.name} exited:\n{self.log_tail()}")
            return check()

        try:
            wait_until(_not_yet_on_error(ready), timeout, what or self.name, interval=0.05)
        except (StackTimeout, RuntimeError) as exc:
            raise RuntimeError(f"{exc}\n--- {self.name} log ---\n{self.log_tail()}") from None

    def wait_healthy(self, url: str, timeout: float = 30.0) -> None:
        """Wait until ``url`` answers 200."""
        from devstack.probes import http_ok

        self.wait_ready(http_ok(url), timeout, f"{self.name} at {url}")

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 15.0) -> None:
        """Signal the process group, wait, SIGKILL it after ``timeout`` seconds."""
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


def _not_yet_on_error(check: Callable[[], object]) -> Callable[[], object]:
    """``check`` with its errors (but a RuntimeError: the process died) read as "not yet"."""

    def guarded() -> object:
        try:
            return check()
        except RuntimeError:
            raise
        except Exception:
            return None

    return guarded


# --------------------------------------------------------------------------- what /proc says


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
    log_path.write_bytes(b"")
    try:
        proc = _popen(comp.argv, env, REPO_ROOT, log_path)
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
