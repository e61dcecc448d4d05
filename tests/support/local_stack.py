"""The real local stack (:mod:`devstack`) on free ports, driven by a test: start, kill -9,
restart, freeze and thaw components, and talk to the core API."""

from __future__ import annotations

import os
import signal
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import replace
from pathlib import Path
from typing import Any

import httpx

from devstack.graph import components
from devstack.probes import api_json, wait_ready
from devstack.procs import Component, group_members, read_records, spawn, stop
from devstack.scan import find_connector
from devstack.settings import StackConfig
from tests.support.procs import free_port, wait_for

FULL_STACK = (
    "redis",
    "dsxa",
    "core",
    "worker-scan",
    "worker-action",
    "worker-result",
    "worker-notify",
    "filesystem",
)
CORE_AND_WORKERS = ("core", "worker-scan", "worker-action", "worker-result", "worker-notify")


def distinct_free_ports(count: int) -> list[int]:
    ports: set[int] = set()
    while len(ports) < count:
        ports.add(free_port())
    return sorted(ports)


def write_files(folder: Path, count: int, prefix: str = "bulk") -> list[Path]:
    """``count`` small distinct benign files, 100 per sub-folder."""
    paths = []
    for n in range(count):
        path = folder / prefix / f"d{n // 100:03d}" / f"f{n:05d}.txt"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(b"benign file number %d\n" % n)
        paths.append(path)
    return paths


class StackRun:
    """One stack in ``run_dir``. ``env`` adds variables to the core and workers, ``connector_env`` to the
    filesystem connector (e.g. ``DSXCONNECTOR_MONITOR``). Authentication is off unless ``env`` turns it on."""

    def __init__(
        self,
        run_dir: Path,
        *,
        env: Mapping[str, str] | None = None,
        connector_env: Mapping[str, str] | None = None,
        scan_concurrency: int = 2,
        core_workers: int = 1,
    ) -> None:
        redis_port, dsxa_port, core_port, fs_port = distinct_free_ports(4)
        self.cfg = StackConfig(
            run_dir=run_dir, redis_port=redis_port, dsxa_port=dsxa_port, core_port=core_port,
            fs_port=fs_port, scan_concurrency=scan_concurrency, core_workers=core_workers,
        )  # fmt: skip
        for folder in (self.cfg.log_dir, run_dir / "redis", self.cfg.quarantine_dir, self.cfg.sample_dir):
            folder.mkdir(parents=True, exist_ok=True)
        self.components: dict[str, Component] = {}
        self.order: dict[str, int] = {}
        core_env = {"DSXCONNECT_AUTH__ENABLED": "false", **(env or {})}  # these tests are not about auth
        for stage in components(self.cfg):
            for comp in stage:
                extra = (
                    {"DSXCONNECTOR_AUTH__ENABLED": "false", **(connector_env or {})}
                    if comp.name == "filesystem"
                    else core_env
                )
                if comp.name in ("redis", "dsxa"):
                    extra = {}
                self.order[comp.name] = len(self.order)
                self.components[comp.name] = replace(comp, env={**comp.env, **extra})
        self.stages = [[self.components[c.name] for c in stage] for stage in components(self.cfg)]
        self.api = httpx.Client(base_url=self.cfg.api_url, timeout=30.0)

    # ---- processes ----------------------------------------------------------------------------

    def start(self) -> StackRun:
        try:
            for stage in self.stages:
                self._start([c.name for c in stage])
        except BaseException:
            self.stop()
            raise
        return self

    def _start(self, names: list[str]) -> None:
        started = [
            (self.components[n], spawn(self.cfg.run_dir, self.components[n], self.order[n])) for n in names
        ]
        for comp, record in started:
            wait_ready(comp, record, self.cfg.start_timeout)

    def records(self) -> dict[str, dict[str, Any]]:
        return {r["name"]: r for r in read_records(self.cfg.run_dir)}

    def kill(self, names: tuple[str, ...] | list[str]) -> None:
        """SIGKILL each component's whole process group (prefork children included), and wait until gone."""
        records = self.records()
        for name in names:
            try:
                os.killpg(records[name]["pid"], signal.SIGKILL)
            except ProcessLookupError:
                pass
        for name in names:
            pid = records[name]["pid"]
            wait_for(lambda pid=pid: not group_members(pid), timeout=15, what=f"{name} to die")

    def restart(self, names: tuple[str, ...] | list[str]) -> None:
        self._start(list(names))

    @contextmanager
    def frozen(self, name: str) -> Iterator[None]:
        """SIGSTOP the component's process group for the block (its queue waits), SIGCONT after."""
        pid = self.records()[name]["pid"]
        os.killpg(pid, signal.SIGSTOP)
        try:
            yield
        finally:
            os.killpg(pid, signal.SIGCONT)

    def stop(self) -> None:
        self.api.close()
        stop(read_records(self.cfg.run_dir), out=lambda _line: None)

    def logs(self, lines: int = 25) -> str:
        parts = []
        for log in sorted(self.cfg.log_dir.glob("*.log")):
            tail = log.read_text(errors="replace").splitlines()[-lines:]
            parts.append(f"--- {log.name} ---\n" + "\n".join(tail))
        return "\n".join(parts)

    # ---- API ----------------------------------------------------------------------------------

    def get(self, path: str, **params: Any) -> Any:
        response = self.api.get(path, params=params)
        assert response.status_code == 200, f"GET {path} -> {response.status_code}: {response.text}"
        return response.json()

    def connector(self) -> dict[str, Any]:
        """The filesystem connector's registration, waited for; a timeout shows the core's last
        ``/connectors/list`` answer and the stack's logs."""
        last: list[object] = []

        def registered() -> dict[str, Any] | None:
            found = find_connector(self.cfg)
            if found is None:
                try:
                    status, body, _ = api_json(self.cfg, "GET", "/connectors/list")
                    last[:] = [status, body]
                except Exception as exc:
                    last[:] = [repr(exc)]
            return found

        try:
            return wait_for(registered, timeout=60, what="the connector to register")  # type: ignore[no-any-return]
        except TimeoutError as exc:
            raise AssertionError(
                f"{exc}; the connector is {self.cfg.connector_url}, the core's last /connectors/list "
                f"answer {last}\n{self.logs(60)}"
            ) from None

    def start_full_scan(self) -> str:
        response = self.api.post(f"/connectors/full_scan/{self.connector()['uuid']}")
        assert response.status_code == 202, response.text
        return str(response.json()["job_id"])

    def job(self, job_id: str) -> dict[str, Any]:
        return self.get(f"/scan/jobs/{job_id}")  # type: ignore[no-any-return]

    def wait_job(
        self, job_id: str, predicate: Callable[[dict[str, Any]], bool], timeout: float = 120, what: str = ""
    ) -> dict[str, Any]:
        seen: dict[str, Any] = {}

        def check() -> dict[str, Any] | None:
            seen.clear()
            seen.update(self.job(job_id))
            return dict(seen) if predicate(seen) else None

        try:
            return wait_for(check, timeout=timeout, interval=0.1, what=what or f"job {job_id}")  # type: ignore[return-value]
        except TimeoutError as exc:
            raise AssertionError(f"{exc}; last seen {seen}\n{self.logs()}") from None
