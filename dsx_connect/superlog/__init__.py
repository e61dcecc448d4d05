"""The scan-result feed ("superlog"): every new scan result to syslog, Splunk, CloudWatch and Sentinel.

Separate from application logs: it carries one SPEC §7 event per scanned item and nothing else.

    result step ──(one Redis call per batch)──► buffer per destination (bounded Redis list)
                                                   │  forwarder thread per destination
                                                   ▼  (lock, batches, backoff, acks)
                                  syslog (udp/tcp/tls) · Splunk HEC · CloudWatch Logs · Sentinel

Modules: ``config`` (settings), ``producer`` (the result step's call), ``buffer`` (Redis lists and
scripts), ``forwarder`` (delivery loop), ``runner`` (start/stop in a Celery worker; ``python -m
dsx_connect.superlog`` runs it alone), ``status`` (``/superlog/stats``, ``/readyz``, ``/metrics``),
one module per destination (``syslog``, ``splunk``, ``cloudwatch``, ``sentinel``) on ``sink``.
"""
