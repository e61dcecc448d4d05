"""Notification webhooks: each scan-result event POSTed to the operator's URLs, signed the Standard
Webhooks way (https://www.standardwebhooks.com/), with the SIEM feed's buffers, retries and stats.

``DSXCONNECT_NOTIFICATIONS__WEBHOOKS`` lists the URLs (each with its secret and an optional verdict
filter). The notification step (``scan_result_notification_queue``) pushes every event a webhook
wants onto that webhook's bounded Redis buffer; a forwarder thread per webhook, run by the same
worker, POSTs them one by one with the superlog forwarder's machinery (``dsx_connect.superlog``):
retries with capped exponential backoff while the receiver is down, oldest dropped (and counted)
when a buffer is full, an event the receiver refuses as such (400, 413, 422) set aside.
"""
