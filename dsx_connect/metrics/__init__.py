"""Prometheus metrics of the core and the workers (``prometheus_client``) and the per-minute history.

``instruments`` declares what the processes measure, ``store_view`` what ``/metrics`` reads from
Redis (the store's durable counters, queue depths), ``exposition`` assembles the scrape,
``celery_hooks`` measures every task through Celery's signals, and ``history`` keeps the per-minute
throughput and verdict counts the dashboard draws. docs/metrics.md lists every series.
"""
