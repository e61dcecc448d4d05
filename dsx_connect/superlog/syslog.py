"""Syslog destination: UDP, TCP or TLS, as the 1.x line, compact JSON or RFC 5424.

Line forms (PRI = facility * 8 + the event's ``severity``, RFC 5424 §6.2.1; times in UTC):

    legacy   <134>May  1 12:00:00 HOST dsx-connect {"timestamp": …, "source": "dsx-connect",
             "scan_request": {…}, "verdict": {…}, "item_action": {…}, …SPEC §7 fields}
    json     <134>May  1 12:00:00 HOST dsx-connect: {compact SPEC §7 event}
    rfc5424  <134>1 2024-05-01T12:00:00.123Z HOST dsx-connect - scan_result [dsx@32473 key="value" …]
             {compact SPEC §7 event}

``legacy`` and ``json`` carry an RFC 3164 header, so collectors see ``dsx-connect`` as the program
name. Over TCP and TLS each message is framed by octet counting (RFC 6587 §3.4.1: ``LEN SP MSG``) or,
with ``framing=lf``, ended by a newline; over UDP each message is one datagram (RFC 5426).

Known limits: syslog has no acknowledgement, so a TCP/TLS batch written just before the collector
dies can be lost (a connection the collector closed is noticed and reopened before each batch);
UDP reports nothing but an ICMP refusal.
"""

from __future__ import annotations

import json
import select
import socket
import ssl
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from dsx_connect.superlog.config import SyslogSettings
from dsx_connect.superlog.events import compact, event_time, legacy_object
from dsx_connect.superlog.sink import Record, Sink
from shared.errors import RetryableError

_MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")
UDP_MAX_PAYLOAD = 65_507  # IPv4: 65,535 - 8 (UDP header) - 20 (IP header)


def _bsd_time(when: datetime) -> str:
    """RFC 3164 §4.1.2 TIMESTAMP: ``Mmm dd hh:mm:ss``, the day padded with a space."""
    return f"{_MONTHS[when.month - 1]} {when.day:2d} {when:%H:%M:%S}"


def _rfc3339(when: datetime) -> str:
    return when.strftime("%Y-%m-%dT%H:%M:%S.") + f"{when.microsecond // 1000:03d}Z"


def _sd_escape(value: str) -> str:
    """RFC 5424 §6.3.3: ``"``, ``\\`` and ``]`` are escaped with a backslash inside PARAM-VALUE."""
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("]", "\\]")


def structured_data(sd_id: str, event: dict[str, Any]) -> str:
    """One SD-ELEMENT with the key fields of the event (empty values left out)."""
    connector = event.get("connector") or {}
    details = event.get("verdict_details") or {}
    file_info = event.get("file_info") or {}
    action = event.get("action") or {}
    params = {
        "scan_request_id": event.get("scan_request_id"),
        "job_id": event.get("job_id"),
        "connector": connector.get("name"),
        "connector_uuid": connector.get("uuid"),
        "verdict": event.get("verdict"),
        "threat_type": details.get("threat_type"),
        "file_type": file_info.get("file_type"),
        "size": file_info.get("size_in_bytes"),
        "sha256": file_info.get("sha256"),
        "action": action.get("requested"),
        "action_status": action.get("status"),
        "location": event.get("location"),
    }
    shown = " ".join(f'{k}="{_sd_escape(str(v))}"' for k, v in params.items() if v not in (None, ""))
    return f"[{sd_id} {shown}]" if shown else "-"


class SyslogFormatter:
    """Builds the message text of one event in the configured form."""

    def __init__(self, settings: SyslogSettings) -> None:
        self.form = settings.format
        self.facility = settings.facility
        self.host = _header_token(settings.hostname or socket.gethostname())
        self.app = settings.app_name
        self.sd_id = settings.structured_data_id

    def pri(self, event: dict[str, Any]) -> int:
        severity = event.get("severity", 6)
        severity = severity if isinstance(severity, int) and 0 <= severity <= 7 else 6
        return self.facility * 8 + severity

    def __call__(self, event: dict[str, Any]) -> str:
        pri, when = self.pri(event), event_time(event)
        if self.form == "rfc5424":
            sd = structured_data(self.sd_id, event)
            return f"<{pri}>1 {_rfc3339(when)} {self.host} {self.app} - scan_result {sd} {compact(event)}"
        if self.form == "json":
            return f"<{pri}>{_bsd_time(when)} {self.host} {self.app}: {compact(event)}"
        # 1.x: json.dumps with its default separators, as DSX-Connect 1.x wrote it
        return f"<{pri}>{_bsd_time(when)} {self.host} {self.app} {json.dumps(legacy_object(event))}"


def _header_token(text: str) -> str:
    """A HOSTNAME usable in both headers: printable ASCII without spaces (RFC 5424 §6.2.4), or ``-``."""
    cleaned = "".join(ch for ch in text if "!" <= ch <= "~")[:255]
    return cleaned or "-"


class SyslogSink(Sink):
    """Sends to one collector; keeps its connection open between batches."""

    name = "syslog"

    def __init__(self, settings: SyslogSettings) -> None:
        self.settings = settings
        self.format = SyslogFormatter(settings)
        self.address = (settings.host or "127.0.0.1", settings.effective_port)
        self.transport = settings.transport
        self.octets = settings.framing == "octet-counting"
        self.max_record_bytes = UDP_MAX_PAYLOAD if self.transport == "udp" else 1_000_000
        self._sock: socket.socket | None = None
        self._tls: ssl.SSLContext | None = None

    def encode(self, event: dict[str, Any]) -> Record:
        line = self.format(event).encode("utf-8")
        if not self.octets and self.transport != "udp":
            line = line.replace(b"\n", b" ")  # a newline would end the message early
        return self.record(line, len(line), event)

    def frame(self, message: bytes) -> bytes:
        """RFC 6587 §3.4.1 octet counting, or §3.4.2 non-transparent framing with LF."""
        if self.octets:
            return b"%d %s" % (len(message), message)
        return message + b"\n"

    def send(self, records: Sequence[Record]) -> int:
        try:
            sock = self._socket()
            if self.transport == "udp":
                for record in records:
                    sock.send(record.payload)
            else:
                sock.sendall(b"".join(self.frame(r.payload) for r in records))
        except OSError as exc:  # ssl.SSLError included
            self.close(graceful=False)  # the stream is broken: nothing to finish cleanly
            raise RetryableError(
                f"syslog {self.transport}://{self.address[0]}:{self.address[1]}: {exc}"
            ) from exc
        return 0

    def _socket(self) -> socket.socket:
        if self._sock is not None and self.transport != "udp" and _peer_closed(self._sock):
            self.close(graceful=False)
        if self._sock is None:
            self._sock = self._connect()
        return self._sock

    def _connect(self) -> socket.socket:
        timeout = self.settings.timeout_s
        if self.transport == "udp":
            family, kind, proto, _, addr = socket.getaddrinfo(*self.address, type=socket.SOCK_DGRAM)[0]
            sock = socket.socket(family, kind, proto)
            sock.settimeout(timeout)
            sock.connect(addr)  # connected: an ICMP refusal surfaces as ECONNREFUSED on a later send
            return sock
        raw = socket.create_connection(self.address, timeout=timeout)
        if self.transport == "tcp":
            return raw
        try:
            return self._tls_context().wrap_socket(raw, server_hostname=self.address[0])
        except BaseException:
            raw.close()
            raise

    def _tls_context(self) -> ssl.SSLContext:
        if self._tls is None:
            s = self.settings
            ctx = ssl.create_default_context(cafile=s.tls_ca_file)
            if s.tls_insecure:
                ctx.check_hostname = False
                ctx.verify_mode = ssl.CERT_NONE
            if s.tls_cert_file:
                ctx.load_cert_chain(s.tls_cert_file, s.tls_key_file)
            self._tls = ctx
        return self._tls

    def close(self, graceful: bool = True) -> None:
        sock, self._sock = self._sock, None
        if sock is None:
            return
        try:
            if graceful and isinstance(sock, ssl.SSLSocket):
                # close_notify, then the collector's own (or its end of the connection): TLS keeps
                # order, so past it the collector has read every record sent before. A busy
                # collector may still be finishing its handshake: closing sooner (the wait was 1 s)
                # made rsyslog fail that handshake and drop the records it had not read yet.
                sock.settimeout(self.settings.timeout_s)
                sock.unwrap()
        except (OSError, ValueError):
            pass
        finally:
            sock.close()


_DRAIN_READS = 64  # what a collector sends us is dropped, at most this many reads (1 MiB) a check


def _peer_closed(sock: socket.socket) -> bool:
    """A syslog collector never writes: a readable socket means it closed (or reset) the connection,
    but for what TLS itself sends (a TLS 1.3 server's session tickets), which is read and dropped."""
    try:
        readable = _readable(sock)
    except (OSError, ValueError):
        return True
    if not readable:
        return False
    if not isinstance(sock, ssl.SSLSocket):
        return True
    timeout = sock.gettimeout()
    sock.setblocking(False)
    try:
        # records for us (none expected) are dropped; an empty read is the end of the stream or
        # the collector's close_notify, and a collector that keeps writing is not one that closed
        return any(not sock.recv(16384) for _ in range(_DRAIN_READS))
    except (ssl.SSLWantReadError, ssl.SSLWantWriteError):
        return False  # only TLS's own records: the connection is alive
    except OSError:
        return True
    finally:
        sock.settimeout(timeout)


def _readable(sock: socket.socket) -> bool:
    """Whether ``sock`` has something to read, or has closed. ``poll``, not ``select``: a busy process
    holds sockets numbered past select's 1,024 (it raised for them, so every batch reconnected)."""
    if not hasattr(select, "poll"):
        return bool(select.select([sock], [], [], 0)[0])
    poller = select.poll()
    poller.register(sock, select.POLLIN)
    return bool(poller.poll(0))
