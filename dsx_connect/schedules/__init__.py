"""Scheduled full scans (issue #18 §1): per-connector cron schedules kept in Redis, run by one
scheduler across the API replicas (a leader lease), and an optional rescan when the scanner's
identity changes. ``docs/schedules.md`` describes the behaviour operators rely on."""
