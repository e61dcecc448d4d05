"""Prometheus metrics (outside the API prefix), from ``prometheus_client`` (docs/metrics.md)."""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import Response
from prometheus_client import CONTENT_TYPE_LATEST

from dsx_connect.api.deps import RedisDep, ResultsDep, SettingsDep
from dsx_connect.metrics.exposition import render
from dsx_connect.metrics.store_view import Snapshot, feed_lines, store_families
from dsx_connect.state.dead_letters import DeadLetterStore

router = APIRouter(tags=["monitoring"])


@router.get(
    "/metrics",
    response_class=Response,
    responses={200: {"content": {CONTENT_TYPE_LATEST: {}}, "description": "Prometheus text format"}},
)
def metrics(results: ResultsDep, client: RedisDep, settings: SettingsDep) -> Response:
    """Histograms and counters of the processes (the workers' too, sharing PROMETHEUS_MULTIPROC_DIR),
    the store's counters, queue depths, the SIEM feed's and the webhooks' counters."""
    dead_letters = DeadLetterStore(client, settings.dlq.retain_s)
    families = store_families(results.stats(), client, dead_letters, feed_lines(client, settings))
    return Response(render([Snapshot(families)]), media_type=CONTENT_TYPE_LATEST)
