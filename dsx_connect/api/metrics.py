"""Prometheus text-format metrics (outside the API prefix)."""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import PlainTextResponse

from dsx_connect.api.deps import RedisDep, ResultsDep, SettingsDep
from dsx_connect.notifications.status import webhook_metrics
from dsx_connect.queues import ALL_QUEUES
from dsx_connect.state.feed import destination_states as superlog_states
from dsx_connect.state.requests import queue_depths
from dsx_connect.superlog.status import prometheus_lines as superlog_metrics

router = APIRouter(tags=["monitoring"])


@router.get("/metrics", response_class=PlainTextResponse)
def metrics(results: ResultsDep, client: RedisDep, settings: SettingsDep) -> str:
    """Scan counters, queue depths and the SIEM feed's counters."""
    stats = results.stats()
    lines = [
        "# HELP dsxconnect_scans_total Scan results stored, by verdict.",
        "# TYPE dsxconnect_scans_total counter",
    ]
    lines += [f'dsxconnect_scans_total{{verdict="{v}"}} {n}' for v, n in sorted(stats["verdicts"].items())]
    lines += [
        "# HELP dsxconnect_scan_errors_total Items whose scan failed.",
        "# TYPE dsxconnect_scan_errors_total counter",
        f"dsxconnect_scan_errors_total {stats['errors']}",
        "# HELP dsxconnect_bytes_scanned_total Bytes scanned.",
        "# TYPE dsxconnect_bytes_scanned_total counter",
        f"dsxconnect_bytes_scanned_total {stats['bytes_scanned']}",
        "# HELP dsxconnect_actions_total Verdict actions applied, by action.",
        "# TYPE dsxconnect_actions_total counter",
    ]
    lines += [f'dsxconnect_actions_total{{action="{a}"}} {n}' for a, n in sorted(stats["actions"].items())]
    lines += [
        "# HELP dsxconnect_queue_depth Tasks waiting in each queue.",
        "# TYPE dsxconnect_queue_depth gauge",
    ]
    for queue, depth in queue_depths(client, ALL_QUEUES).items():
        lines.append(f'dsxconnect_queue_depth{{queue="{queue}"}} {depth}')
    lines += superlog_metrics(superlog_states(client, settings.superlog.active))  # SIEM feed, per destination
    lines += webhook_metrics(client, settings.notifications)  # notification webhooks, per webhook
    return "\n".join(lines) + "\n"
