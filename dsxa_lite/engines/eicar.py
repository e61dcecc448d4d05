"""EICAR anti-malware test file detection.

The EICAR standard (https://www.eicar.org/download-anti-malware-testfile/): the file starts with
the 68-byte test string, optionally followed by whitespace (space, tab, LF, CR, CTRL-Z) with the
whole file at most 128 bytes. Like AV vendors, nothing else matches (the string inside a larger
file is not the test file).

The string is never stored literally in this repository: it is rebuilt at import time from an
XOR-encoded form and checked against its well-known SHA-256.
"""

from __future__ import annotations

import hashlib

from dsxa_lite.engines import Hit, ScanInput
from dsxa_lite.threats import ThreatType

_ENCODED = (
    "026f157b0a7f1a1b0a016e060a00026f6e720a04736d1919736d277e1f13191b087709"
    "0e1b141e1b081e771b140e130c13080f09770e1f090e771c13161f7b7e12711270"
)
_KEY = 0x5A

EICAR_SHA256 = "275a021bbfb6489e54d471899f7db9d1663fc695ec2fe2a2c4538aabf651fd0f"
MAX_SIZE = 128
_WHITESPACE = b" \t\n\r\x1a"


def eicar_bytes() -> bytes:
    """The 68-byte EICAR test string, decoded at run time."""
    return bytes(b ^ _KEY for b in bytes.fromhex(_ENCODED))


class EicarEngine:
    """Detects the EICAR test file (threat type ``VIRUS``, as AV engines report it). No options."""

    name = "eicar"

    def __init__(self) -> None:
        self._signature = eicar_bytes()
        if hashlib.sha256(self._signature).hexdigest() != EICAR_SHA256:
            raise RuntimeError("EICAR signature failed its integrity check")
        self._hit = Hit(self.name, "EICAR-Test-File", ThreatType.VIRUS, "EICAR anti-malware test file")

    def scan(self, item: ScanInput) -> Hit | None:
        """Hit when the whole file is the EICAR string plus optional trailing whitespace."""
        if item.size < len(self._signature) or item.size > MAX_SIZE:
            return None
        head = item.head
        if head.startswith(self._signature) and not head[len(self._signature) :].strip(_WHITESPACE):
            return self._hit
        return None

    def lookup(self, sha256: str) -> Hit | None:
        """Hit when ``sha256`` is that of the bare 68-byte test string."""
        return self._hit if sha256 == EICAR_SHA256 else None
