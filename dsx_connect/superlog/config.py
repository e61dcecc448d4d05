"""Settings of the scan-result feed: ``DSXCONNECT_SYSLOG__*`` and ``DSXCONNECT_SUPERLOG__*`` (SPEC §9, §11).

| variable | default | meaning |
| --- | --- | --- |
| ``SUPERLOG__ENABLED`` | unset | on/off; unset: on when ``SYSLOG__SYSLOG_SERVER_URL`` is set (1.x behaviour) |
| ``SUPERLOG__DESTINATIONS`` | ``syslog`` | CSV of ``syslog,splunk,cloudwatch,sentinel`` |
| ``SUPERLOG__FORWARDER`` | ``auto`` | ``auto``: in the worker consuming ``scan_result_notification_queue``; ``on``/``off`` |
| ``SUPERLOG__BUFFER_MAX_EVENTS`` | 100000 | events held per destination; past it the oldest drop (counted) |
| ``SUPERLOG__BATCH_MAX_EVENTS`` | 500 | events taken from a buffer per batch |
| ``SUPERLOG__REDACT__LOCATION`` / ``__METAINFO`` | ``keep`` | ``keep``, ``hash`` (sha256 with ``__SALT``) or ``drop`` |

The 1.x names of ``DSXCONNECT_SYSLOG__*`` (``SYSLOG_SERVER_URL``, ``SYSLOG_SERVER_PORT``, ``TRANSPORT``,
``TLS_CA_FILE``, ``TLS_CERT_FILE``, ``TLS_KEY_FILE``, ``TLS_INSECURE``) are accepted as they were.
"""

from __future__ import annotations

import ipaddress
import json
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator, model_validator
from pydantic_settings import NoDecode

DESTINATIONS = ("syslog", "splunk", "cloudwatch", "sentinel")
ENV = "DSXCONNECT_SUPERLOG__"

# RFC 5424 §6.2.1 facility codes by name
FACILITIES = {
    "kern": 0, "user": 1, "mail": 2, "daemon": 3, "auth": 4, "syslog": 5, "lpr": 6, "news": 7,
    "uucp": 8, "cron": 9, "authpriv": 10, "ftp": 11, "ntp": 12, "audit": 13, "alert": 14, "clock": 15,
    "local0": 16, "local1": 17, "local2": 18, "local3": 19, "local4": 20, "local5": 21, "local6": 22,
    "local7": 23,
}  # fmt: skip


class SyslogSettings(BaseModel):
    """Where and how scan results go to syslog (``DSXCONNECT_SYSLOG__*``).

    ``format``: ``legacy`` is the DSX-Connect 1.x line (``<PRI>TIMESTAMP HOST dsx-connect {json}``, the
    object carrying ``timestamp``, ``source``, ``scan_request``, ``verdict``, ``item_action`` plus the SPEC
    §7 fields); ``json`` is ``<PRI>TIMESTAMP HOST dsx-connect: {compact SPEC §7 event}``; ``rfc5424`` is an
    RFC 5424 message with the key fields as structured data and the compact event as MSG.
    """

    model_config = ConfigDict(extra="ignore")

    host: str | None = Field(default=None, description="collector host (1.x: SYSLOG_SERVER_URL)")
    port: int | None = Field(default=None, ge=1, le=65535, description="514 (udp, tcp) or 6514 (tls)")
    transport: Literal["udp", "tcp", "tls"] = "tcp"
    format: Literal["legacy", "json", "rfc5424"] = "legacy"
    framing: Literal["octet-counting", "lf"] = Field(
        default="octet-counting",
        description="TCP/TLS framing: RFC 6587 octet counting, or a newline per message",
    )
    facility: int = Field(default=16, ge=0, le=23, description="a number or a name (local0 = 16)")
    hostname: str | None = Field(default=None, description="HOSTNAME field; default: this machine's name")
    app_name: str = Field(default="dsx-connect", pattern=r"^[!-~]{1,48}$")
    structured_data_id: str = Field(
        default="dsx@32473", pattern=r"^[!#-<>-\\\^-~]{1,32}$"
    )  # RFC 5424 SD-NAME
    tls_ca_file: str | None = None
    tls_cert_file: str | None = None
    tls_key_file: str | None = None
    tls_insecure: bool = False
    timeout_s: float = Field(default=10.0, gt=0)

    @model_validator(mode="before")
    @classmethod
    def _accept_1x_names(cls, data: Any) -> Any:
        if isinstance(data, dict):
            data = dict(data)
            if "syslog_server_url" in data and "host" not in data:
                data["host"] = data.pop("syslog_server_url")
            if "syslog_server_port" in data and "port" not in data:
                data["port"] = data.pop("syslog_server_port")
            host = data.get("host")
            if isinstance(host, str) and "://" in host:  # ours: tcp://siem:514, udp://…, tls://…
                scheme, rest = host.split("://", 1)
                data.setdefault("transport", scheme.lower())
                rest = rest.rstrip("/")
                if rest.rsplit(":", 1)[-1].isdigit() and not rest.endswith("]"):
                    rest, port = rest.rsplit(":", 1)
                    data.setdefault("port", port)
                data["host"] = rest
            if isinstance(data.get("transport"), str):
                data["transport"] = data["transport"].lower()
            for name in ("host", "port"):  # an empty variable (a blank line of an env file) means unset
                if data.get(name) == "":
                    data[name] = None
        return data

    @field_validator("host")
    @classmethod
    def _a_host(cls, value: str | None) -> str | None:
        return _host_only(value) if value else value

    @field_validator("facility", mode="before")
    @classmethod
    def _facility_name(cls, value: Any) -> Any:
        if isinstance(value, str) and not value.strip().isdigit():
            name = value.strip().lower()
            if name not in FACILITIES:
                raise ValueError(f"unknown facility {value!r}: one of {', '.join(FACILITIES)} or 0-23")
            return FACILITIES[name]
        return value

    @property
    def configured(self) -> bool:
        """A collector was named (the 1.x switch that turned the syslog output on)."""
        return bool(self.host)

    @property
    def effective_port(self) -> int:
        return self.port or (6514 if self.transport == "tls" else 514)


def _host_only(value: str) -> str:
    """``value`` as a host name or address (an IPv6 literal may be bracketed); anything else (a port
    left in, ``siem:514``, ``siem:abc``, a path, a space) is refused rather than retried forever."""
    host = value.strip()
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
        literal = True
    else:
        literal = False
    if ":" in host or literal:
        try:
            ipaddress.IPv6Address(host)
        except ValueError:
            raise ValueError(
                f"{value!r} is not a host: give the port in DSXCONNECT_SYSLOG__PORT or as tcp://host:port "
                "(an IPv6 address alone, or in brackets)"
            ) from None
        return host
    if any(c in host for c in "/\\?#@") or any(c.isspace() for c in host):
        raise ValueError(f"{value!r} is not a host (a name or an address, without a path or a space)")
    return host


def lock_ttl_problem(lock_ttl_s: float, timeouts: dict[str, float]) -> str | None:
    """Why ``lock_ttl_s`` is too short for calls that may last ``timeouts`` (variable: seconds), or None.

    The forwarder renews its lock while a call is in flight; the TTL still has to outlast a call
    comfortably (more than twice its timeout), so that a late renewal cannot let a second forwarder in.
    """
    if not timeouts:
        return None
    name, longest = max(timeouts.items(), key=lambda item: item[1])
    if lock_ttl_s > 2 * longest:
        return None
    return (
        f"{ENV}LOCK_TTL_S ({lock_ttl_s:g}) must be more than twice {name} ({longest:g}): a delivery call "
        "may last its timeout, and a lock expiring under it lets another forwarder send the same events"
    )


def lock_ttl_for(longest_timeout_s: float) -> float:
    """The lock TTL derived for calls of at most ``longest_timeout_s`` (when none was set)."""
    return float(max(30.0, 3 * longest_timeout_s))


class RedactSettings(BaseModel):
    """Personal data in the feed: keep, hash (sha256 of salt + value) or drop ``location``/``metainfo``."""

    model_config = ConfigDict(extra="ignore")

    location: Literal["keep", "hash", "drop"] = "keep"
    metainfo: Literal["keep", "hash", "drop"] = "keep"
    salt: SecretStr | None = None


class SplunkSettings(BaseModel):
    """Splunk HTTP Event Collector (``DSXCONNECT_SUPERLOG__SPLUNK__*``)."""

    model_config = ConfigDict(extra="ignore")

    hec_url: str | None = Field(
        default=None,
        pattern=r"^https?://",
        description="https://splunk:8088 (the /services/collector/event path is added when absent)",
    )
    token: SecretStr | None = None
    index: str | None = None
    sourcetype: str = "dsxconnect:scan_result"
    source: str = "dsx-connect"
    host: str | None = Field(
        default=None, description="host field of each event; default: this machine's name"
    )
    channel: str | None = Field(
        default=None, description="X-Splunk-Request-Channel (indexer acknowledgement)"
    )
    verify_tls: bool = True
    ca_bundle: str | None = None
    timeout_s: float = Field(default=10.0, gt=0)
    max_batch_bytes: int = Field(default=1_000_000, ge=10_000, description="HEC max_content_length")


class CloudWatchSettings(BaseModel):
    """AWS CloudWatch Logs (``DSXCONNECT_SUPERLOG__CLOUDWATCH__*``); credentials: the boto3 chain."""

    model_config = ConfigDict(extra="ignore")

    log_group: str | None = Field(default=None, min_length=1, max_length=512)
    log_stream: str = Field(default="dsx-connect", min_length=1, max_length=512)
    region: str | None = None
    endpoint_url: str | None = Field(default=None, pattern=r"^https?://")
    create: bool = Field(default=False, description="create the group and stream when missing")
    timeout_s: float = Field(default=10.0, gt=0)


class SentinelSettings(BaseModel):
    """Microsoft Sentinel through the Azure Monitor Logs Ingestion API (``DSXCONNECT_SUPERLOG__SENTINEL__*``)."""

    model_config = ConfigDict(extra="ignore")

    dce_url: str | None = Field(default=None, pattern=r"^https?://", description="data collection endpoint")
    dcr_immutable_id: str | None = Field(default=None, description="dcr-…")
    stream_name: str = Field(default="Custom-DsxConnectScanResult")
    tenant_id: str | None = None
    client_id: str | None = None
    client_secret: SecretStr | None = None
    authority_host: str = Field(
        default="https://login.microsoftonline.com",
        pattern=r"^https://",
        description="token authority (sovereign clouds: https://login.microsoftonline.us, …)",
    )
    scope: str = "https://monitor.azure.com//.default"
    verify_tls: bool = True
    ca_bundle: str | None = None
    timeout_s: float = Field(default=10.0, gt=0)
    max_batch_bytes: int = Field(default=1_000_000, ge=10_000, le=1_048_576, description="1 MB per call")


_REQUIRED = {
    "splunk": ("hec_url", "token"),
    "cloudwatch": ("log_group",),
    "sentinel": ("dce_url", "dcr_immutable_id", "tenant_id", "client_id", "client_secret"),
}


class SuperlogSettings(BaseModel):
    """The scan-result feed to SIEMs (``DSXCONNECT_SUPERLOG__*``); syslog itself is ``DSXCONNECT_SYSLOG__*``."""

    model_config = ConfigDict(extra="ignore")

    enabled: bool | None = Field(
        default=None, description="unset: on when DSXCONNECT_SYSLOG__SYSLOG_SERVER_URL is set (1.x behaviour)"
    )
    destinations: Annotated[list[Literal["syslog", "splunk", "cloudwatch", "sentinel"]], NoDecode] = Field(
        default_factory=list, description="CSV of syslog,splunk,cloudwatch,sentinel (default: syslog)"
    )
    forwarder: Literal["auto", "on", "off"] = Field(
        default="auto",
        description="auto: run the forwarder in the worker consuming scan_result_notification_queue",
    )
    buffer_max_events: int = Field(default=100_000, ge=1, le=10_000_000, description="per destination")
    batch_max_events: int = Field(default=500, ge=1, le=10_000)
    flush_interval_s: float = Field(default=0.5, gt=0, le=60, description="poll period of an idle buffer")
    retry_backoff_s: float = Field(default=1.0, gt=0)
    retry_backoff_max_s: float = Field(default=60.0, gt=0)
    lock_ttl_s: float = Field(
        default=30.0,
        ge=1,
        description="a dead forwarder's buffer is taken over after this; more than twice each active "
        "destination's TIMEOUT_S (unset: raised to three times the longest when 30 s is not)",
    )
    rejected_retain: int = Field(
        default=1000, ge=0, description="events a receiver refused, kept for inspection"
    )
    fail_readyz: bool = Field(
        default=False, description="a destination that is down makes /readyz answer 503"
    )
    redact: RedactSettings = Field(default_factory=RedactSettings)
    splunk: SplunkSettings = Field(default_factory=SplunkSettings)
    cloudwatch: CloudWatchSettings = Field(default_factory=CloudWatchSettings)
    sentinel: SentinelSettings = Field(default_factory=SentinelSettings)

    @field_validator("enabled", mode="before")
    @classmethod
    def _blank_is_unset(cls, value: Any) -> Any:
        return None if isinstance(value, str) and not value.strip() else value

    @field_validator("destinations", mode="before")
    @classmethod
    def _csv(cls, value: Any) -> Any:
        if isinstance(value, str):
            text = value.strip()
            if text.startswith("["):
                return json.loads(text)
            return [part.strip().lower() for part in text.split(",") if part.strip()]
        return value

    @model_validator(mode="after")
    def _complete(self) -> SuperlogSettings:
        """Refuse a listed destination that misses a required value, naming the variables."""
        if self.enabled is False:
            return self
        self.destinations = list(dict.fromkeys(self.destinations))
        missing = [
            f"{ENV}{dest.upper()}__{name.upper()}"
            for dest in self.destinations
            for name in _REQUIRED.get(dest, ())
            if not getattr(getattr(self, dest), name)
        ]
        if missing:
            raise ValueError(
                f"{', '.join(missing)} required: {ENV}DESTINATIONS names {','.join(self.destinations)}"
            )
        if self.redact.salt is None and "hash" in (self.redact.location, self.redact.metainfo):
            raise ValueError(f"{ENV}REDACT__SALT is required to hash location or metainfo")
        self._fit_lock_ttl(
            {
                f"{ENV}{dest.upper()}__TIMEOUT_S": getattr(self, dest).timeout_s
                for dest in self.destinations
                if dest != "syslog"
            }
        )
        return self

    def _fit_lock_ttl(self, timeouts: dict[str, float]) -> None:
        """Refuse a ``LOCK_TTL_S`` the operator set that a call may outlast, naming both variables; one
        left unset is raised above twice the longest timeout instead."""
        problem = lock_ttl_problem(self.lock_ttl_s, timeouts)
        if problem is None:
            return
        if "lock_ttl_s" in self.model_fields_set:
            raise ValueError(problem)
        self.lock_ttl_s = lock_ttl_for(max(timeouts.values()))

    def resolve(self, syslog: SyslogSettings) -> None:
        """Fix the effective switch: unset means on when a syslog collector is named (1.x behaviour);
        no destination listed means syslog."""
        if self.enabled is None:
            self.enabled = syslog.configured
        if self.enabled and not self.destinations:
            self.destinations = ["syslog"]
        if "syslog" in self.active:
            timeouts = {
                f"{ENV}{d.upper()}__TIMEOUT_S": getattr(self, d).timeout_s
                for d in self.active
                if d != "syslog"
            }
            self._fit_lock_ttl({**timeouts, "DSXCONNECT_SYSLOG__TIMEOUT_S": syslog.timeout_s})

    @property
    def active(self) -> list[str]:
        """The destinations events are fed to (empty when the feed is off)."""
        return list(self.destinations) if self.enabled else []
