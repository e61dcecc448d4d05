"""The series ``/metrics`` reads from Redis at scrape time: the store's own counters (durable, shared
by every replica), queue depths, items accepted and unfinished, dead letters held, the SIEM feed and
the webhooks. Names kept from 0.x (dashboards and alerts rely on them)."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Any

import redis
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.registry import Collector

from dsx_connect.notifications.status import webhook_metrics
from dsx_connect.queues import ALL_QUEUES
from dsx_connect.state.dead_letters import DeadLetterStore
from dsx_connect.state.feed import destination_states as superlog_states
from dsx_connect.state.requests import queue_depths, unfinished_items
from dsx_connect.superlog.status import prometheus_lines as superlog_metrics


class Snapshot(Collector):
    """Metric families read once (per scrape), handed to a registry as a collector."""

    def __init__(self, families: Iterable[Metric]) -> None:
        self.families = list(families)

    def collect(self) -> Iterator[Metric]:
        yield from self.families


def store_families(
    stats: dict[str, Any], client: redis.Redis, dead_letters: DeadLetterStore, feed_lines: list[str]
) -> list[Metric]:
    """The families of one scrape. ``stats``: ``ResultStore.stats()``; ``feed_lines``: the SIEM feed's
    and webhooks' text-format lines (their modules write them), parsed here into families."""
    scans = CounterMetricFamily("dsxconnect_scans", "Scan results stored, by verdict.", labels=["verdict"])
    for verdict, count in sorted(stats["verdicts"].items()):
        scans.add_metric([verdict], count)
    errors = CounterMetricFamily("dsxconnect_scan_errors", "Items whose scan failed.", value=stats["errors"])
    scanned = CounterMetricFamily("dsxconnect_bytes_scanned", "Bytes scanned.", value=stats["bytes_scanned"])
    actions = CounterMetricFamily(
        "dsxconnect_actions", "Verdict actions applied, by action.", labels=["action"]
    )
    for action, count in sorted(stats["actions"].items()):
        actions.add_metric([action], count)
    depth = GaugeMetricFamily("dsxconnect_queue_depth", "Tasks waiting in each queue.", labels=["queue"])
    for queue, count in queue_depths(client, ALL_QUEUES).items():
        depth.add_metric([queue], count)
    in_flight = GaugeMetricFamily(
        "dsxconnect_items_in_flight",
        "Items accepted and without a result yet, wherever they are (queued, retrying, held by a worker).",
        value=unfinished_items(client),
    )
    held = GaugeMetricFamily(
        "dsxconnect_dead_letters_held", "Dead letters kept in the store now, by stage.", labels=["stage"]
    )
    for stage, count in sorted(dead_letters.stats()["by_stage"].items()):
        held.add_metric([stage], count)
    families: list[Metric] = [scans, errors, scanned, actions, depth, in_flight, held]
    families += text_string_to_metric_families("\n".join(feed_lines) + "\n") if feed_lines else []
    return families


def feed_lines(client: redis.Redis, settings: Any) -> list[str]:
    """The SIEM feed's (per destination) and the notification webhooks' (per webhook) lines."""
    lines = superlog_metrics(superlog_states(client, settings.superlog.active))
    return lines + webhook_metrics(client, settings.notifications)
