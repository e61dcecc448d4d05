"""The log lines DSX-Connect 1.x operators grep for, written where the events happen.

* ``notify.scan_result job=<id> status=<status> processed=<n> total=<n> duration=<s>``: the
  notification step published results of a job (one line per job per batch).
* ``job.complete job=<id> processed=<n> total=<n> finished_at=<RFC 3339>``: once per job, by whichever
  of the notification step or the ``enqueue_done`` route first sees it completed (a marker in Redis
  keeps it to one line across workers, replicas and redeliveries).

(``enqueue_done posted job=… enqueued_total=… status=…`` is the connector's line: ``shared/connector``.)
"""

from __future__ import annotations

import logging
from datetime import datetime
from typing import Any

from dsx_connect.state.jobs import JobStore

log = logging.getLogger("dsx_connect.oplog")
COMPLETE_MARK_TTL_S = 7 * 86400  # outlives any redelivery of the job's last batch


def _seconds(start: str | None, end: str | None) -> str:
    if not start or not end:
        return "?"
    elapsed = datetime.fromisoformat(end.replace("Z", "+00:00")) - datetime.fromisoformat(
        start.replace("Z", "+00:00")
    )
    return f"{max(elapsed.total_seconds(), 0.0):.1f}s"


def _total(view: dict[str, Any]) -> Any:
    return view["enqueued_total"] if view.get("enqueued_total") is not None else "?"


def log_scan_results_notified(view: dict[str, Any]) -> None:
    """``notify.scan_result …`` for one job view."""
    log.info(
        "notify.scan_result job=%s status=%s processed=%s total=%s duration=%s",
        view["job_id"], view["status"], view["processed"], _total(view),
        _seconds(view.get("started"), view.get("finished") or view.get("last_update")),
    )  # fmt: skip


def log_job_complete_once(jobs: JobStore, view: dict[str, Any]) -> bool:
    """``job.complete …`` if the job has completed and nobody logged it yet; True if this call did."""
    if view.get("status") != "completed":
        return False
    if not jobs.claim_complete_log(str(view["job_id"]), COMPLETE_MARK_TTL_S):
        return False
    log.info(
        "job.complete job=%s processed=%s total=%s finished_at=%s",
        view["job_id"], view["processed"], _total(view), view.get("finished") or view.get("last_update"),
    )  # fmt: skip
    return True
