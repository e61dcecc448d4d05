"""Syslog output: the exact lines a real rsyslogd writes for the 1.x form, compact JSON and RFC 5424,
over UDP, TCP (RFC 6587 octet counting, or LF) and TLS."""

from __future__ import annotations

import contextlib
import json
import os
import resource
import socket
import ssl
import threading
from collections.abc import Iterator
from typing import Any

import pytest

from dsx_connect.superlog.config import SyslogSettings
from dsx_connect.superlog.syslog import SyslogFormatter, SyslogSink, _peer_closed, structured_data
from shared.errors import RetryableError
from shared.models import EventConnector, EventFileInfo, ScanResultEvent, VerdictDetails
from tests.dsx_connect.superlog.peers import Rsyslog
from tests.support.emulators import missing
from tests.support.procs import free_port, wait_for

NO_TLS_DRIVER = (
    "rsyslog's TLS driver is not installed: apt-get install rsyslog-gnutls (scripts/deps/apt-packages.txt)"
)


def small_event(**changes: Any) -> dict[str, Any]:
    fields: dict[str, Any] = {
        "timestamp": "2024-05-01T09:03:05.005Z",
        "scan_request_id": "r1",
        "job_id": "j1",
        "connector": EventConnector(name="fs", uuid="u1"),
        "location": 'in/a "b".txt',
        "metainfo": "a.txt",
        "verdict": "Malicious",
        "verdict_details": VerdictDetails(threat_type="VIRUS"),
        "file_info": EventFileInfo(file_type="TEXT", size_in_bytes=68, sha256="9f86d081"),
        "severity": 2,
        **changes,
    }
    return json.loads(ScanResultEvent(**fields).model_dump_json())


COMPACT = (
    '{"event_type":"scan_result","schema_version":1,"timestamp":"2024-05-01T09:03:05.005Z",'
    '"scan_request_id":"r1","job_id":"j1","connector":{"name":"fs","uuid":"u1"},'
    '"location":"in/a \\"b\\".txt","metainfo":"a.txt","verdict":"Malicious",'
    '"verdict_details":{"event_description":"","reason":"","threat_type":"VIRUS"},'
    '"file_info":{"file_type":"TEXT","size_in_bytes":68,"sha256":"9f86d081"},'
    '"action":{"requested":"nothing","applied":false,"status":"nothing","message":""},'
    '"scanner":{"scan_guid":"","duration_us":0,"engine_version":"","cached":false},"severity":2,"error":null}'
)
EXPECTED = {
    "legacy": (
        '<130>May  1 09:03:05 test-host dsx-connect {"timestamp": "2024-05-01T09:03:05.005Z", '
        '"source": "dsx-connect", "scan_request": {"connector": {"name": "fs", "uuid": "u1"}, '
        '"location": "in/a \\"b\\".txt", "metainfo": "a.txt", "scan_job_id": "j1", "size_in_bytes": 68}, '
        '"verdict": {"scan_guid": "", "verdict": "Malicious", "verdict_details": {"event_description": "", '
        '"reason": "", "threat_type": "VIRUS"}, "file_info": {"file_type": "TEXT", "file_size_in_bytes": 68, '
        '"file_hash": "9f86d081"}, "scan_duration_in_microseconds": 0}, "item_action": {"status": "nothing", '
        '"message": "", "description": null, "item_action": "nothing"}, "event_type": "scan_result", '
        '"schema_version": 1, "scan_request_id": "r1", "job_id": "j1", "connector": {"name": "fs", "uuid": "u1"}, '
        '"location": "in/a \\"b\\".txt", "metainfo": "a.txt", "verdict_details": {"event_description": "", '
        '"reason": "", "threat_type": "VIRUS"}, "file_info": {"file_type": "TEXT", "size_in_bytes": 68, '
        '"sha256": "9f86d081"}, "action": {"requested": "nothing", "applied": false, "status": "nothing", '
        '"message": ""}, "scanner": {"scan_guid": "", "duration_us": 0, "engine_version": "", "cached": false}, '
        '"severity": 2, "error": null}'
    ),
    "json": "<130>May  1 09:03:05 test-host dsx-connect: " + COMPACT,
    "rfc5424": (
        '<130>1 2024-05-01T09:03:05.005Z test-host dsx-connect - scan_result [dsx@32473 scan_request_id="r1" '
        'job_id="j1" connector="fs" connector_uuid="u1" verdict="Malicious" threat_type="VIRUS" file_type="TEXT" '
        'size="68" sha256="9f86d081" action="nothing" action_status="nothing" location="in/a \\"b\\".txt"] '
        + COMPACT
    ),
}


# ---------------------------------------------------------------------------- formatting


@pytest.mark.unit
@pytest.mark.parametrize("form", ["legacy", "json", "rfc5424"])
def test_each_form_is_the_documented_line(form: str) -> None:
    line = SyslogFormatter(SyslogSettings.model_validate({"format": form, "hostname": "test-host"}))(
        small_event()
    )
    assert line == EXPECTED[form]


@pytest.mark.unit
def test_legacy_object_keeps_the_1x_keys_first_and_adds_the_spec_fields() -> None:
    line = SyslogFormatter(SyslogSettings(hostname="h"))(small_event())
    body = json.loads(line.split(" dsx-connect ", 1)[1])
    assert list(body)[:5] == ["timestamp", "source", "scan_request", "verdict", "item_action"]
    assert body["verdict"]["verdict"] == "Malicious"  # 1.x parsers read verdict.verdict
    for field in (
        "event_type",
        "schema_version",
        "scan_request_id",
        "job_id",
        "connector",
        "file_info",
        "action",
    ):
        assert field in body
    assert body["severity"] == 2


@pytest.mark.unit
@pytest.mark.parametrize(
    ("verdict", "severity", "pri"),
    [("Malicious", 2, 16 * 8 + 2), ("Non Compliant", 4, 132), ("Not Scanned", 5, 133), ("Benign", 6, 134)],
)
def test_pri_is_the_facility_and_the_severity_of_the_verdict(verdict: str, severity: int, pri: int) -> None:
    line = SyslogFormatter(SyslogSettings(format="json", hostname="h"))(
        small_event(verdict=verdict, severity=severity)
    )
    assert line.startswith(f"<{pri}>")


@pytest.mark.unit
def test_facility_by_name_and_number() -> None:
    assert SyslogSettings(facility="local7").facility == 23  # type: ignore[arg-type]
    assert SyslogSettings(facility="4").facility == 4  # type: ignore[arg-type]
    line = SyslogFormatter(SyslogSettings(facility=1, format="rfc5424", hostname="h"))(small_event())
    assert line.startswith("<10>1 ")
    with pytest.raises(ValueError, match="unknown facility"):
        SyslogSettings(facility="local9")  # type: ignore[arg-type]


@pytest.mark.unit
def test_structured_data_escapes_quote_backslash_and_bracket() -> None:
    sd = structured_data("dsx@32473", small_event(location='a\\b"c]d'))
    assert sd.endswith(' location="a\\\\b\\"c\\]d"]')


@pytest.mark.unit
def test_the_1x_names_and_a_url_configure_the_collector() -> None:
    old = SyslogSettings.model_validate(
        {"syslog_server_url": "siem.example", "syslog_server_port": "1514", "transport": "UDP"}
    )
    assert (old.host, old.effective_port, old.transport) == ("siem.example", 1514, "udp")
    ours = SyslogSettings.model_validate({"host": "tls://siem.example:6515"})
    assert (ours.host, ours.effective_port, ours.transport) == ("siem.example", 6515, "tls")
    assert SyslogSettings(host="x", transport="tls").effective_port == 6514


@pytest.mark.unit
def test_octet_counting_frames_count_bytes_not_characters() -> None:
    sink = SyslogSink(SyslogSettings(host="127.0.0.1"))
    assert sink.frame("é".encode()) == b"2 \xc3\xa9"
    lf = SyslogSink(SyslogSettings(host="127.0.0.1", framing="lf"))
    assert lf.frame(b"abc") == b"abc\n"


@pytest.mark.unit
def test_a_collector_that_refuses_the_connection_is_a_retryable_error() -> None:
    sink = SyslogSink(SyslogSettings(host="127.0.0.1", port=free_port(), timeout_s=2))
    with pytest.raises(RetryableError, match=r"syslog tcp://127\.0\.0\.1"):
        sink.send([sink.encode(small_event())])


# ---------------------------------------------------------------------------- against rsyslogd


def _send(rsyslog: Rsyslog, transport: str, **settings: Any) -> list[str]:
    """Send one event in each form over ``transport``; return the raw lines rsyslog wrote."""
    before = len(rsyslog.lines(transport))
    port = rsyslog.ports[transport]
    for form in ("legacy", "json", "rfc5424"):
        sink = SyslogSink(
            SyslogSettings.model_validate(
                {
                    "host": "127.0.0.1",
                    "port": port,
                    "transport": transport,
                    "format": form,
                    "hostname": "test-host",
                }
                | settings
            )
        )
        try:
            sink.send([sink.encode(small_event())])
        finally:
            sink.close()
        rsyslog.wait_lines(transport, before + 1)  # in order: one form after the other
        before += 1
    return rsyslog.lines(transport)[-3:]


@pytest.mark.integration
@pytest.mark.parametrize("transport", ["udp", "tcp", "tls"])
def test_rsyslog_writes_the_exact_lines_over_each_transport(
    rsyslog: Rsyslog, transport: str, certs: Any
) -> None:
    if transport == "tls" and not rsyslog.driver:
        missing(NO_TLS_DRIVER)
    extra = {"tls_ca_file": str(certs.ca)} if transport == "tls" else {}
    assert _send(rsyslog, transport, **extra) == [EXPECTED["legacy"], EXPECTED["json"], EXPECTED["rfc5424"]]
    if transport != "tls":
        parsed = rsyslog.lines(transport, "parsed")[-3:]
        assert [line.split("|")[:4] for line in parsed] == [["dsx-connect", "16", "2", "test-host"]] * 3
        assert json.loads(parsed[1].split("|", 4)[4]) == small_event()  # json form: MSG is the event


@pytest.mark.integration
def test_newline_framing_over_tcp(rsyslog: Rsyslog) -> None:
    assert _send(rsyslog, "tcp", framing="lf") == [EXPECTED["legacy"], EXPECTED["json"], EXPECTED["rfc5424"]]


@pytest.mark.integration
def test_a_batch_over_tcp_arrives_whole_and_in_order(rsyslog: Rsyslog) -> None:
    before = len(rsyslog.lines("tcp"))
    sink = SyslogSink(
        SyslogSettings(host="127.0.0.1", port=rsyslog.ports["tcp"], format="json", hostname="h")
    )
    events = [small_event(scan_request_id=f"batch-{i}") for i in range(300)]
    sink.send([sink.encode(e) for e in events])
    sink.close()
    lines = rsyslog.wait_lines("tcp", before + 300)[before:]
    assert [json.loads(line.split(": ", 1)[1])["scan_request_id"] for line in lines] == [
        f"batch-{i}" for i in range(300)
    ]


@pytest.mark.integration
def test_tls_refuses_a_collector_it_cannot_verify(rsyslog: Rsyslog) -> None:
    if not rsyslog.driver:
        missing(NO_TLS_DRIVER)
    sink = SyslogSink(
        SyslogSettings(host="127.0.0.1", port=rsyslog.ports["tls"], transport="tls", timeout_s=5)
    )
    with pytest.raises(RetryableError, match="CERTIFICATE_VERIFY_FAILED"):
        sink.send([sink.encode(small_event())])


@contextlib.contextmanager
def sockets_numbered_past(number: int) -> Iterator[None]:
    """The next files this process opens get numbers above ``number`` (a busy worker's sockets)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    needed = number + 64
    if soft < needed:
        if hard != resource.RLIM_INFINITY and hard < needed:
            pytest.fail(f"RLIMIT_NOFILE's hard limit {hard} is below {needed}: raise it (ulimit -Hn)")
        resource.setrlimit(resource.RLIMIT_NOFILE, (needed, hard))
    held: list[int] = []
    try:
        while not held or held[-1] <= number:
            held.append(os.open(os.devnull, os.O_RDONLY))
        yield
    finally:
        for fd in held:
            os.close(fd)
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))


@pytest.mark.integration
@pytest.mark.parametrize("high_fd", [False, True], ids=["low-fd", "fd-past-1024"])
def test_tls_keeps_one_connection_across_batches(rsyslog: Rsyslog, certs: Any, high_fd: bool) -> None:
    """A TLS 1.3 collector sends session tickets after the handshake: the socket reads as readable,
    which for a plain-TCP collector means it closed. The sink reads past them and keeps the
    connection (it reconnected before every batch, and waited on each close). So it does with a
    socket numbered past 1,024, which ``select`` refused (every batch reconnected, and the old
    connection ended in a reset)."""
    if not rsyslog.driver:
        missing(NO_TLS_DRIVER)
    with sockets_numbered_past(1024) if high_fd else contextlib.nullcontext():
        numbers = _send_three_batches_on_one_connection(rsyslog, certs)
    assert len(numbers) == 1
    assert (min(numbers) > 1024) is high_fd


def _send_three_batches_on_one_connection(rsyslog: Rsyslog, certs: Any) -> set[int]:
    """Three batches over TLS, each read by rsyslog: one connection; returns its socket's numbers."""
    before = len(rsyslog.lines("tls"))
    settings = {"port": rsyslog.ports["tls"], "transport": "tls", "tls_ca_file": str(certs.ca)}
    sink = SyslogSink(SyslogSettings.model_validate({"host": "127.0.0.1", "format": "json"} | settings))
    connect, connects = sink._connect, []

    def counted() -> Any:
        connects.append(1)
        return connect()

    sink._connect = counted  # type: ignore[method-assign]
    numbers: set[int] = set()
    try:
        for n in range(3):
            sink.send([sink.encode(small_event(scan_request_id=f"tls-{n}"))])
            rsyslog.wait_lines("tls", before + n + 1)  # the collector's tickets have arrived by now
            assert sink._sock is not None
            numbers.add(sink._sock.fileno())
    finally:
        sink.close()
    lines = rsyslog.lines("tls")[before:]
    assert [json.loads(line.split(": ", 1)[1])["scan_request_id"] for line in lines] == [
        "tls-0",
        "tls-1",
        "tls-2",
    ]
    assert len(connects) == 1
    return numbers


@pytest.mark.integration
def test_a_tls_collector_that_writes_to_the_sink_is_still_connected(certs: Any) -> None:
    """A collector has nothing to say, but one that writes anyway (without pause here) is read and
    dropped, a bounded amount per check (at most ``_DRAIN_READS`` reads, so a check always ends), and
    its connection is kept; once it closes, the next check sees it."""
    server_ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server_ctx.load_cert_chain(certs.cert, certs.key)
    listener = socket.create_server(("127.0.0.1", 0))
    stop, writing = threading.Event(), threading.Event()

    def serve() -> None:
        raw, _ = listener.accept()
        with server_ctx.wrap_socket(raw, server_side=True) as conn:
            conn.settimeout(1)
            while not stop.is_set():
                try:
                    conn.sendall(b"x" * 16384)
                except TimeoutError:
                    continue  # the sink reads only when it checks
                except OSError:
                    return
                writing.set()

    server = threading.Thread(target=serve, daemon=True)
    server.start()
    settings = {"port": listener.getsockname()[1], "transport": "tls", "tls_ca_file": str(certs.ca)}
    sink = SyslogSink(SyslogSettings.model_validate({"host": "127.0.0.1", "format": "json"} | settings))
    try:
        sock = sink._socket()
        assert writing.wait(30)
        for _ in range(5):
            assert not _peer_closed(sock)
        assert sink._socket() is sock  # kept
        stop.set()
        server.join(10)
        assert not server.is_alive()
        wait_for(lambda: _peer_closed(sock), timeout=10, what="the collector's close seen")
    finally:
        stop.set()
        sink.close(graceful=False)
        listener.close()
