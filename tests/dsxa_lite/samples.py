"""Sample files for dsxa_lite tests, built at run time.

The EICAR string is never stored literally: it is decoded from an XOR-encoded form (a different
key from the engine's, so the two cannot share a mistake) and checked against its published
SHA-256.
"""

from __future__ import annotations

import hashlib

EICAR_SHA256 = "275a021bbfb6489e54d471899f7db9d1663fc695ec2fe2a2c4538aabf651fd0f"
_EICAR_XOR_7F = (
    "274a305e2f5a3f3e2f244b232f25274a4b572f2156483c3c5648025b3a363c3e2d522c2b3e313b3e2d3b523e"
    "312b3629362d2a2c522b3a2c2b523936333a5e5b37543755"
)

MARKER = b"DSXA-LITE-TEST-MALWARE-MARKER"
MARKER_RULE = "DSXA_Lite_Test_Marker"


def eicar() -> bytes:
    """The 68-byte EICAR test string."""
    data = bytes(b ^ 0x7F for b in bytes.fromhex(_EICAR_XOR_7F))
    assert hashlib.sha256(data).hexdigest() == EICAR_SHA256
    return data


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def filler(size: int, seed: int = 0) -> bytes:
    """``size`` bytes of benign text (no rule matches it)."""
    line = f"benign line {seed} of a plain text file, nothing to see here.\n".encode()
    return (line * (size // len(line) + 1))[:size]
