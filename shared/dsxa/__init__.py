"""DSXA scanner protocol (SPEC §3): pure request building and response parsing, plus thin clients."""

from shared.dsxa.protocol import (
    classify_status,
    custom_metadata,
    parse_verdict,
    scan_headers,
)

__all__ = ["classify_status", "custom_metadata", "parse_verdict", "scan_headers"]
