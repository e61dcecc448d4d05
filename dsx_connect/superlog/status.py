"""What operators see of the feed: ``/superlog/stats``, the ``/readyz`` checks and ``/metrics`` lines."""

from __future__ import annotations

import re
from typing import Any

import redis

from dsx_connect.settings import Settings
from dsx_connect.state.feed import destination_states


def feed_stats(client: redis.Redis, settings: Settings) -> dict[str, Any]:
    """The feed's switch and each active destination's state and counters."""
    superlog = settings.superlog
    return {
        "enabled": bool(superlog.enabled),
        "forwarder": superlog.forwarder,
        "buffer_max_events": superlog.buffer_max_events,
        "destinations": destination_states(client, superlog.active),
    }


_HTTP_STATUS = re.compile(r"\bHTTP ([1-5]\d\d)\b")


def readiness(states: dict[str, dict[str, Any]]) -> dict[str, str]:
    """One ``/readyz`` check per destination: ``ok``, or what is wrong (``down``, ``down (HTTP 503)``,
    ``stalled: …``). ``/readyz`` answers without credentials: the receiver's own text (host names,
    versions, what it says of our token) stays on the operators' ``/superlog/stats`` (``last_error``)."""
    checks = {}
    for dest, state in states.items():
        if state["status"] == "down":
            status = _HTTP_STATUS.search(state.get("last_error") or "")
            checks[f"superlog:{dest}"] = f"down (HTTP {status.group(1)})" if status else "down"
        elif state["status"] == "stalled":
            checks[f"superlog:{dest}"] = f"stalled: no forwarder running, {state['backlog']} events waiting"
        else:
            checks[f"superlog:{dest}"] = "ok"
    return checks


_METRICS = (
    ("sent", "counter", "Scan-result events delivered to a SIEM destination."),
    ("dropped", "counter", "Events dropped because a destination's buffer was full (oldest first)."),
    ("rejected", "counter", "Events a destination refused or discarded (set aside, not retried)."),
    ("backlog", "gauge", "Events waiting for a destination (buffer and batch in flight)."),
    ("up", "gauge", "1 when the last delivery to a destination succeeded (or none was tried yet)."),
)


def prometheus_lines(
    states: dict[str, dict[str, Any]],
    prefix: str = "dsxconnect_superlog",
    label: str = "destination",
    what: str = "a SIEM destination",
) -> list[str]:
    """``dsxconnect_superlog_*`` series in the Prometheus text format, one per destination (the
    notification webhooks: ``dsxconnect_webhook_*`` with a ``webhook`` label)."""
    lines: list[str] = []
    for name, kind, text in _METRICS:
        metric = f"{prefix}_{name}" + ("_total" if kind == "counter" else "")
        lines += [f"# HELP {metric} {text.replace('a SIEM destination', what)}", f"# TYPE {metric} {kind}"]
        for dest, state in states.items():
            value = int(state["status"] not in ("down", "stalled")) if name == "up" else state[name]
            lines.append(f'{metric}{{{label}="{dest}"}} {value}')
    return lines
