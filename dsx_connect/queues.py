"""The four Celery queues (SPEC §2), named exactly; never rename one without every producer and consumer."""

from collections.abc import Sized

SCAN_REQUEST_QUEUE = "scan_request_queue"
VERDICT_ACTION_QUEUE = "verdict_action_queue"
SCAN_RESULT_QUEUE = "scan_result_queue"
SCAN_RESULT_NOTIFICATION_QUEUE = "scan_result_notification_queue"

ALL_QUEUES = (SCAN_REQUEST_QUEUE, VERDICT_ACTION_QUEUE, SCAN_RESULT_QUEUE, SCAN_RESULT_NOTIFICATION_QUEUE)

# Task names, namespaced by module, each routed to its queue.
SCAN_TASK = "dsx_connect.workers.scan_batch"
ACTION_TASK = "dsx_connect.workers.verdict_action_batch"
RESULT_TASK = "dsx_connect.workers.store_results_batch"
NOTIFY_TASK = "dsx_connect.workers.notify_results_batch"

ROUTES = {
    SCAN_TASK: {"queue": SCAN_REQUEST_QUEUE},
    ACTION_TASK: {"queue": VERDICT_ACTION_QUEUE},
    RESULT_TASK: {"queue": SCAN_RESULT_QUEUE},
    NOTIFY_TASK: {"queue": SCAN_RESULT_NOTIFICATION_QUEUE},
}


def shown(items: Sized) -> dict[str, str]:
    """Task options that log a batch as its size: Celery would otherwise ``saferepr`` the whole batch
    on every publish and log it on every receipt, a measurable share of a scan's CPU."""
    return {"argsrepr": f"[<batch of {len(items)}>]", "kwargsrepr": "{}"}
