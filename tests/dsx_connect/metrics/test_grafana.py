"""The Grafana dashboard in deploy/grafana: valid JSON, every panel queries a dsxconnect series, and
each series it names is one the code declares (the stack test checks them against a real scrape)."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest

pytestmark = pytest.mark.unit

DASHBOARD = Path(__file__).resolve().parents[3] / "deploy" / "grafana" / "dsx-connect.json"
_SERIES = re.compile(r"\bdsxconnect_[a-z0-9_]+")


def expressions(dashboard: dict[str, Any]) -> list[str]:
    return [target["expr"] for panel in dashboard["panels"] for target in panel.get("targets", [])]


def dashboard_metric_names(dashboard: dict[str, Any]) -> set[str]:
    """The sample names the dashboard's PromQL expressions ask for."""
    return {name for expr in expressions(dashboard) for name in _SERIES.findall(expr)}


def test_every_panel_queries_a_dsxconnect_series() -> None:
    dashboard = json.loads(DASHBOARD.read_text())
    assert dashboard["uid"] == "dsx-connect"
    for panel in dashboard["panels"]:
        assert panel["targets"], panel["title"]
        for target in panel["targets"]:
            assert _SERIES.search(target["expr"]), f"{panel['title']}: {target['expr']}"


def test_the_dashboard_covers_what_operators_look_at() -> None:
    asked = dashboard_metric_names(json.loads(DASHBOARD.read_text()))
    for name in (
        "dsxconnect_verdicts_total",
        "dsxconnect_scan_duration_seconds_bucket",
        "dsxconnect_connector_read_duration_seconds_bucket",
        "dsxconnect_queue_wait_seconds_bucket",
        "dsxconnect_task_batch_items_sum",
        "dsxconnect_queue_depth",
        "dsxconnect_dead_letters_total",
        "dsxconnect_scan_cache_hits_total",
    ):
        assert name in asked, name
