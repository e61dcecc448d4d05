"""Real receivers for the feed's tests: rsyslogd (UDP, TCP, TLS), the HTTPS receiver app, a throwaway CA.

rsyslogd runs as its own instance (``rsyslogd -n -f CONF -i PIDFILE``) with a generated config in a
temporary folder: no imuxsock (never /dev/log), no system config, one ruleset per transport writing
the raw message of each line to ``<transport>.log`` and the fields rsyslog parsed to
``<transport>.parsed`` (``programname|facility|severity|hostname|msg``).
"""

from __future__ import annotations

import glob
import socket
import ssl
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from devstack.certs import ServerCert, server_cert
from devstack.emulators import rsyslogd_binary
from tests.support.procs import PYTHON, ServiceProcess, base_env, restartable_port, wait_for

RSYSLOGD = rsyslogd_binary()


def rsyslog_tls_driver() -> str | None:
    """``gtls`` when rsyslog's GnuTLS stream driver module is installed.

    Not ``ossl``: before rsyslog 8.2602 (Debian 12 ships 8.2302) it closes each TLS session's socket
    twice, once through OpenSSL's BIO and once itself; a file rsyslog opened between the two (its
    output file, lazily, on the first message) lost its descriptor to the second close, and from
    then on both rules of the ruleset wrote into the other file: every later TLS line was "lost"
    (CI, one run in about eight under load; seen with gdb and the descriptor table)."""
    for pattern in ("/usr/lib/*/rsyslog", "/usr/lib/rsyslog", "/usr/lib64/rsyslog"):
        if glob.glob(f"{pattern}/lmnsd_gtls.so"):
            return "gtls"
    return None


# ---------------------------------------------------------------------------- certificates


Certs = ServerCert


def make_certs(folder: Path) -> Certs:
    """A throwaway CA and a server certificate for 127.0.0.1 and localhost, signed by it."""
    return server_cert(folder, "localhost", days=2)


# ---------------------------------------------------------------------------- rsyslogd

_CONF = """
global(workDirectory="{work}" maxMessageSize="64k")
module(load="imudp")
module(load="imtcp" maxSessions="100")
template(name="raw" type="string" string="%rawmsg%\\n")
template(name="parsed" type="string"
         string="%programname%|%syslogfacility%|%syslogseverity%|%hostname%|%msg%\\n")
{rulesets}
input(type="imudp" address="127.0.0.1" port="{udp}" ruleset="udp")
input(type="imtcp" address="127.0.0.1" port="{tcp}" ruleset="tcp")
{tls_input}
"""

_RULESET = """ruleset(name="{name}") {{
  action(type="omfile" file="{out}/{name}.log" template="raw")
  action(type="omfile" file="{out}/{name}.parsed" template="parsed")
}}"""

_TLS_INPUT = (
    'input(type="imtcp" address="127.0.0.1" port="{port}" ruleset="tls" streamDriver.name="{driver}" '
    'streamDriver.mode="1" streamDriver.authMode="anon" streamDriver.CAFile="{ca}" '
    'streamDriver.CertFile="{cert}" streamDriver.KeyFile="{key}")'
)


class Rsyslog:
    """One rsyslogd listening on UDP, TCP and (with a TLS driver) TLS, on free ports."""

    def __init__(self, folder: Path, certs: Certs | None, log_dir: Path) -> None:
        self.folder = folder
        self.folder.mkdir(parents=True, exist_ok=True)
        self.driver = rsyslog_tls_driver() if certs else None
        self.ports = {
            "udp": restartable_port(),
            "tcp": restartable_port(),
            "tls": restartable_port(),
        }  # restarted
        transports = ["udp", "tcp"] + (["tls"] if self.driver else [])
        tls_input = ""
        if self.driver and certs:
            tls_input = _TLS_INPUT.format(
                port=self.ports["tls"], driver=self.driver, ca=certs.ca, cert=certs.cert, key=certs.key
            )
        conf = _CONF.format(
            work=folder,
            udp=self.ports["udp"],
            tcp=self.ports["tcp"],
            rulesets="\n".join(_RULESET.format(name=t, out=folder) for t in transports),
            tls_input=tls_input,
        )
        self.conf = folder / "rsyslog.conf"
        self.conf.write_text(conf)
        assert RSYSLOGD
        argv = [RSYSLOGD, "-n", "-f", str(self.conf), "-i", str(folder / "rsyslogd.pid")]
        self.proc = ServiceProcess(f"rsyslogd-{self.ports['tcp']}", argv, base_env(), log_dir)

    def start(self) -> Rsyslog:
        self.proc.start()

        def listening() -> bool:
            if not self.proc.alive():
                raise RuntimeError(f"rsyslogd exited:\n{self.proc.log_tail()}")
            ports = [self.ports["tcp"]] + ([self.ports["tls"]] if self.driver else [])
            for port in ports:
                with socket.create_connection(("127.0.0.1", port), timeout=1):
                    pass
            return True

        wait_for(listening, timeout=20, interval=0.05, what="rsyslogd listening")
        return self

    def stop(self) -> None:
        self.proc.stop()

    def lines(self, transport: str, kind: str = "log") -> list[str]:
        path = self.folder / f"{transport}.{kind}"
        return path.read_text().splitlines() if path.exists() else []

    def wait_lines(self, transport: str, count: int, timeout: float = 20.0, kind: str = "log") -> list[str]:
        """The first ``count`` lines rsyslog wrote for ``transport``, once it wrote at least that many."""
        wait_for(
            lambda: len(self.lines(transport, kind)) >= count,
            timeout=timeout,
            what=f"{count} lines in {transport}.{kind} (have {len(self.lines(transport, kind))})",
        )
        return self.lines(transport, kind)


# ---------------------------------------------------------------------------- HTTPS receiver


@dataclass
class Receiver:
    """The HTTPS receiver app under uvicorn: Splunk HEC, the Sentinel DCE and its token endpoint."""

    url: str
    ca: Path
    proc: ServiceProcess
    port: int

    def client(self) -> httpx.Client:
        return httpx.Client(base_url=self.url, verify=tls_context(self.ca), timeout=5.0)

    def received(self, kind: str) -> list[Any]:
        """The calls the receiver recorded: ``splunk``, ``sentinel`` or ``token``."""
        with self.client() as client:
            calls: list[Any] = client.get("/_received").json()[kind]
            return calls

    def reset(self) -> None:
        with self.client() as client:
            client.delete("/_received").raise_for_status()
            client.post(
                "/_control",
                json={
                    "fail_next": 0,
                    "status": 503,
                    "retry_after": None,
                    "refuse_marker": None,
                    "fail_body": None,
                },
            ).raise_for_status()

    def control(self, **settings: object) -> None:
        with self.client() as client:
            client.post("/_control", json=settings).raise_for_status()

    def start(self) -> Receiver:
        self.proc = ServiceProcess(self.proc.name, self.proc.argv, self.proc.env, self.proc.log_path.parent)
        self.proc.start()
        wait_until_answers(
            self.proc, lambda: httpx.get(f"{self.url}/_alive", verify=tls_context(self.ca), timeout=2)
        )
        return self

    def stop(self) -> None:
        self.proc.stop()


def wait_until_answers(proc: ServiceProcess, call: Callable[[], httpx.Response]) -> None:
    def check() -> bool:
        if not proc.alive():
            raise RuntimeError(f"{proc.name} exited:\n{proc.log_tail()}")
        return call().status_code == 200

    wait_for(check, timeout=30, interval=0.05, what=proc.name)


def receiver(certs: Certs, log_dir: Path, **env: str) -> Receiver:
    """A Receiver, not started yet (``.start()``)."""
    port = restartable_port()  # stopped and started again while forwarders retry it
    argv = [
        PYTHON, "-m", "uvicorn", "tests.dsx_connect.superlog.receiver_app:app",
        "--host", "127.0.0.1", "--port", str(port), "--log-level", "warning",
        "--ssl-certfile", str(certs.cert), "--ssl-keyfile", str(certs.key),
    ]  # fmt: skip
    proc = ServiceProcess(f"siem-receiver-{port}", argv, base_env(**env), log_dir)
    return Receiver(f"https://127.0.0.1:{port}", certs.ca, proc, port)


def tls_context(ca: Path) -> ssl.SSLContext:
    return ssl.create_default_context(cafile=str(ca))
