"""The core chart's metrics (docs/metrics.md): every core pod writes its series to its own /tmp
emptyDir, each worker serves them on the metrics port, annotated for Prometheus; off, none of it."""

from __future__ import annotations

from typing import Any

import pytest

from tests.deploy.test_helm import CORE, QUEUES, by_kind, render

pytestmark = pytest.mark.unit


def env_of(deployment: dict[str, Any]) -> dict[str, Any]:
    container = deployment["spec"]["template"]["spec"]["containers"][0]
    return {item["name"]: item.get("value") for item in container.get("env", [])}


def test_every_core_pod_writes_to_its_own_folder_and_workers_serve_it() -> None:
    deployments = by_kind(render(CORE), "Deployment")
    api = deployments["dsx-dsx-connect-api"]
    assert env_of(api)["PROMETHEUS_MULTIPROC_DIR"] == "/tmp/prometheus"
    for name in QUEUES:
        worker = deployments[f"dsx-dsx-connect-worker-{name}"]
        pod = worker["spec"]["template"]
        env = env_of(worker)
        assert env["PROMETHEUS_MULTIPROC_DIR"] == "/tmp/prometheus"
        assert env["DSXCONNECT_METRICS__WORKER_PORT"] == "9808"
        assert pod["spec"]["containers"][0]["ports"] == [{"name": "metrics", "containerPort": 9808}]
        assert pod["metadata"]["annotations"]["prometheus.io/scrape"] == "true"
        assert pod["metadata"]["annotations"]["prometheus.io/port"] == "9808"
        mounts = {m["mountPath"]: m["name"] for m in pod["spec"]["containers"][0]["volumeMounts"]}
        volumes = {v["name"]: v for v in pod["spec"]["volumes"]}
        assert "emptyDir" in volumes[mounts["/tmp"]]  # per pod: PIDs of two pods never share a folder


def test_metrics_off_renders_none_of_it() -> None:
    deployments = by_kind(render(CORE, {"metrics": {"enabled": False}}), "Deployment")
    for name, deployment in deployments.items():
        if name.endswith("dsxa-lite"):
            continue
        env = env_of(deployment)
        assert "PROMETHEUS_MULTIPROC_DIR" not in env and "DSXCONNECT_METRICS__WORKER_PORT" not in env
        assert "prometheus.io/scrape" not in (
            deployment["spec"]["template"]["metadata"].get("annotations") or {}
        )
