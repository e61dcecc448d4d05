"""The Celery app shared by the API (to publish) and the workers (to consume)."""

from __future__ import annotations

import logging

from celery import Celery
from celery.signals import after_setup_logger, worker_init, worker_process_init, worker_ready, worker_shutdown
from kombu import Queue

from dsx_connect.queues import ALL_QUEUES, ROUTES
from dsx_connect.redis_sentinel import is_sentinel_url, parse_sentinel_url
from dsx_connect.settings import get_settings
from dsx_connect.workers import broker_guard
from shared.gc_tuning import tune_gc
from shared.logging import configure_logging


def create_celery_app() -> Celery:
    broker_guard.install()  # a lost broker connection must not stop the worker (see the module)
    settings = get_settings()
    broker = settings.broker_url  # DSXCONNECT_TASKQUEUE__BROKER, else DSXCONNECT_REDIS_URL
    sentinel_options: dict[str, object] = {}
    if is_sentinel_url(broker):  # kombu's sentinel transport follows the master through failovers
        broker, sentinel_options = parse_sentinel_url(broker).celery_broker()
    app = Celery(
        "dsx_connect",
        broker=broker,
        backend=settings.taskqueue.backend,
        include=["dsx_connect.workers.tasks"],
    )
    app.conf.update(
        task_queues=[Queue(name, routing_key=name) for name in ALL_QUEUES],
        task_create_missing_queues=False,  # a typo in a queue name fails loudly
        task_default_queue=ALL_QUEUES[0],
        task_routes=ROUTES,
        task_serializer="json",
        accept_content=["json"],
        task_ignore_result=True,
        # A task is acknowledged only after it ran: a crashed worker's batch is redelivered, and
        # every step is idempotent on the scan request id.
        task_acks_late=True,
        # Celery would "reject" a failed task without requeue, which kombu's Redis transport treats
        # as an ack. No step's exception reaches Celery: dsx_connect.workers.guard retries the task,
        # dead-letters its items, or rejects it *with* requeue.
        task_acks_on_failure_or_timeout=False,
        task_reject_on_worker_lost=True,
        worker_prefetch_multiplier=1,
        # A task a crashed worker held is delivered again after this long. It exceeds the longest
        # countdown a task is sent with plus the task's time limit (settings validation), so a task
        # that is waiting or running is never delivered a second time beside itself.
        broker_transport_options={
            "visibility_timeout": settings.workers.visibility_timeout_s,
            # look for such tasks every fifth of that period (kombu's default sweep is ~100 s)
            "unacked_restore_interval": max(1, min(30, settings.workers.visibility_timeout_s // 5)),
            "unacked_restore_throttle": 1,
            # The sweep holds a lock in Redis; a worker killed while holding it would block every
            # redelivery until it expires (kombu's default: 300 s). A sweep takes milliseconds.
            "unacked_mutex_expire": max(5, min(60, settings.workers.visibility_timeout_s // 5)),
            # Bodies travel as the JSON text they are, not base64 inside JSON (kombu's default): a
            # third smaller, and no encoding step either way. Each message names its own encoding,
            # so messages queued before this setting are still read.
            "body_encoding": None,
            **sentinel_options,
        },
        broker_connection_retry_on_startup=True,
        worker_hijack_root_logger=False,
        worker_redirect_stdouts=False,
        # Steps bound themselves well below this (start_deadline_s, item_deadline_s); the limit is
        # the backstop: a task past it is killed and redelivered, never run twice at once.
        task_time_limit=int(settings.workers.task_time_limit_s),
    )
    return app


celery_app = create_celery_app()

import dsx_connect.metrics.celery_hooks  # noqa: E402, F401  (queue wait, batch sizes, worker metrics port)


def _worker_logging() -> None:
    configure_logging("dsx_connect.worker", get_settings().log_level)
    # Celery's per-task "succeeded" line reprs every argument of a batch: each step logs its own
    # one-line summary instead.
    logging.getLogger("celery.app.trace").setLevel(logging.WARNING)


@after_setup_logger.connect
def _json_logs(**_: object) -> None:
    _worker_logging()


@worker_process_init.connect
def _fresh_process(**_: object) -> None:
    _worker_logging()
    tune_gc()  # a prefork child, after the fork


@worker_init.connect
def _started(**_: object) -> None:
    tune_gc()  # the main process (which runs the tasks itself in a solo pool)


@worker_ready.connect
def _start_superlog(sender: object = None, **_: object) -> None:
    """The SIEM feed's forwarder runs as threads of the worker consuming scan_result_notification_queue
    (``DSXCONNECT_SUPERLOG__FORWARDER``; see ``dsx_connect.superlog.runner``)."""
    from dsx_connect.notifications.runner import start_in_worker as start_webhooks
    from dsx_connect.settings import warn_about_unknown_variables
    from dsx_connect.superlog.runner import start_in_worker

    warn_about_unknown_variables(logging.getLogger("dsx_connect.worker"))  # as the API does at start
    app = getattr(sender, "app", celery_app)
    start_in_worker(app.amqp.queues.consume_from or ())
    start_webhooks(app.amqp.queues.consume_from or ())  # the notification webhooks' forwarders


@worker_shutdown.connect
def _stop_superlog(**_: object) -> None:
    from dsx_connect.notifications.runner import stop_in_worker as stop_webhooks
    from dsx_connect.superlog.runner import stop_in_worker

    stop_in_worker()
    stop_webhooks()
