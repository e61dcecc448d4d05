"""ClamAV through a running clamd (optional: ``DSXA_LITE_CLAMD``).

The file goes to clamd with its ``INSTREAM`` command (chunks prefixed by their 4-byte big-endian
length, then a zero length; clamd answers ``stream: OK`` or ``stream: <signature> FOUND``), over a
unix socket or TCP. clamd unpacks archives itself, so only the file as sent is streamed, not
each member. A signature name maps to a DSXA threat type by its words (``Ransom`` → RANSOMWARE,
``Backdoor``, ``Dropper``/``Downloader`` → DROPPER, ``PUA``, ``Spyware``/``Keylogger``, ``Worm``),
else VIRUS.

clamd's own limits apply (``StreamMaxLength``, 25 MiB by default): past them it answers an error,
which fails the scan (a 500 the core retries) rather than calling the file clean.
"""

from __future__ import annotations

import re
import socket
import struct
import time

from dsxa_lite.engines import Hit, ScanInput
from dsxa_lite.threats import ThreatType

CHUNK_BYTES = 1024 * 1024
_WORDS = re.compile(r"[A-Za-z]+")
_KINDS: tuple[tuple[str, ThreatType], ...] = (
    ("ransom", ThreatType.RANSOMWARE),
    ("backdoor", ThreatType.BACKDOOR),
    ("dropper", ThreatType.DROPPER),
    ("downloader", ThreatType.DROPPER),
    ("pua", ThreatType.PUA),
    ("spyware", ThreatType.SPYWARE),
    ("keylogger", ThreatType.SPYWARE),
    ("worm", ThreatType.WORM),
)


class ClamdError(RuntimeError):
    """clamd could not be reached or answered an error."""


def parse_address(value: str) -> tuple[str, str | tuple[str, int]]:
    """``("unix", path)`` or ``("tcp", (host, port))`` from ``/path``, ``unix:/path`` or ``host:port``."""
    text = value.strip()
    if text.startswith("unix:"):
        text = text[len("unix:") :]
    if text.startswith("/"):
        return "unix", text
    host, sep, port = text.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise ValueError(f"not a unix socket path or host:port: {value!r}")
    return "tcp", (host.strip("[]"), int(port))


def threat_type_of(signature: str) -> ThreatType:
    """The DSXA threat type a ClamAV signature name suggests (VIRUS when nothing does)."""
    words = [word.lower() for word in _WORDS.findall(signature)]
    for key, kind in _KINDS:
        if any(word.startswith(key) for word in words):
            return kind
    return ThreatType.VIRUS


class ClamavEngine:
    """Asks clamd about each file; options: address (see :func:`parse_address`), timeout."""

    name = "clamav"

    def __init__(self, address: str, timeout_s: float = 30.0) -> None:
        self.address = address
        self.family, self.target = parse_address(address)
        self.timeout_s = timeout_s
        # when :meth:`version` was last asked (``time.monotonic()``; 0: never), so the version
        # the identity names is asked again now and then (dsxa_lite.api.clamd_version)
        self.version_asked_at = 0.0

    def _connect(self) -> socket.socket:
        try:
            if self.family == "unix":
                sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
                sock.settimeout(self.timeout_s)
                sock.connect(self.target)
                return sock
            return socket.create_connection(self.target, timeout=self.timeout_s)  # type: ignore[arg-type]
        except OSError as exc:
            raise ClamdError(f"cannot reach clamd at {self.address}: {exc}") from None

    @staticmethod
    def _reply(sock: socket.socket) -> str:
        data = b""
        while not data.endswith(b"\0"):
            chunk = sock.recv(4096)
            if not chunk:
                break
            data += chunk
        return data.rstrip(b"\0").decode("utf-8", "replace").strip()

    def version(self) -> str:
        """clamd's ``VERSION`` answer (engine, database version and date; freshclam's updates
        change it)."""
        self.version_asked_at = time.monotonic()
        try:
            with self._connect() as sock:
                sock.sendall(b"zVERSION\0")
                answer = self._reply(sock)
        except ClamdError:
            raise
        except OSError as exc:  # a timeout or a reset after the connection was made
            raise ClamdError(f"clamd at {self.address}: {exc}") from None
        if not answer:
            raise ClamdError(f"clamd at {self.address} answered VERSION with nothing")
        return answer

    def scan(self, item: ScanInput) -> Hit | None:
        """Hit when clamd finds a signature in the file; :class:`ClamdError` when it cannot say."""
        try:
            with self._connect() as sock:
                sock.sendall(b"zINSTREAM\0")
                offset = 0
                while offset < item.size:
                    chunk = item.read_at(offset, CHUNK_BYTES)
                    if not chunk:
                        break
                    sock.sendall(struct.pack(">I", len(chunk)) + chunk)
                    offset += len(chunk)
                sock.sendall(struct.pack(">I", 0))
                answer = self._reply(sock)
        except OSError as exc:
            raise ClamdError(f"clamd at {self.address}: {exc}") from None
        if answer.endswith("FOUND"):
            signature = answer.removeprefix("stream:").removesuffix("FOUND").strip()
            return Hit(self.name, signature, threat_type_of(signature), "ClamAV signature")
        if answer.endswith("OK"):
            return None
        raise ClamdError(f"clamd at {self.address} answered {answer[:200]!r}")
