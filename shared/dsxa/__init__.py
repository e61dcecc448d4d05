"""DSXA scanner protocol (SPEC §3): pure request building and response parsing, used by the hot path (dsx_connect.workers.hot_path)."""

from shared.dsxa.protocol import (
    classify_status,
    custom_metadata,
    parse_verdict,
    scan_headers,
)

__all__ = ["classify_status", "custom_metadata", "parse_verdict", "scan_headers"]
