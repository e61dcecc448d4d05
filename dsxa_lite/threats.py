"""DSXA's threat types: the only values ``verdict_details.threat_type`` may take (or null).

Deep Instinct's DSXA (and its public SDK, which validates answers against this enum) knows exactly
these eight. Every engine maps its findings onto them; rule metadata and block-list entries are
checked against them at start.
"""

from __future__ import annotations

from enum import StrEnum


class ThreatType(StrEnum):
    """A DSXA threat type, as sent on the wire (upper case)."""

    RANSOMWARE = "RANSOMWARE"
    BACKDOOR = "BACKDOOR"
    DROPPER = "DROPPER"
    PUA = "PUA"
    SPYWARE = "SPYWARE"
    VIRUS = "VIRUS"
    WORM = "WORM"
    DUALUSE = "DUALUSE"


THREAT_TYPE_NAMES = tuple(member.value for member in ThreatType)
# the YARA compiler checks rule meta against this (yara-x `allowed_metadata`)
THREAT_TYPE_REGEXP = "^(" + "|".join(THREAT_TYPE_NAMES) + ")$"


def parse_threat_type(value: str) -> ThreatType:
    """The :class:`ThreatType` named by ``value`` (case-insensitive); ValueError naming the choices."""
    try:
        return ThreatType(value.strip().upper())
    except ValueError:
        raise ValueError(f"unknown threat type {value!r} (one of {', '.join(THREAT_TYPE_NAMES)})") from None
