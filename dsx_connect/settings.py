"""Core settings: environment variables with prefix ``DSXCONNECT_``, nested with ``__`` (SPEC §9).

Short names of the original guide (``APP_ENV``, ``REDIS_URL``, ``DSXA_SCANNER_URL``, ``DSX_API_KEY``,
``USE_TLS``) and the DSX-Connect 1.x names of SPEC §11 are accepted as aliases.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping
from functools import lru_cache
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import AliasChoices, BaseModel, ConfigDict, Field, SecretStr, model_validator
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict

from dsx_connect.auth.settings import AuthSettings, NetworkList
from dsx_connect.cache.settings import ScanCacheSettings
from dsx_connect.metrics.settings import MetricsSettings
from dsx_connect.notifications.config import NotificationsSettings
from dsx_connect.results.settings import ResultsDbSettings
from dsx_connect.schedules.settings import SchedulerSettings
from dsx_connect.superlog.config import SuperlogSettings, SyslogSettings
from shared.env_names import unknown_variables
from shared.redaction import register_secret
from shared.settings import ScalarKey, SettingsError, accept_scalar_values, load_settings

GIB = 1 << 30


class ScannerSettings(BaseModel):
    """Where and how to reach the DSXA scanner."""

    model_config = ConfigDict(extra="ignore")

    scan_binary_url: str = Field(default="http://127.0.0.1:5000/scan/binary/v2", pattern=r"^https?://")
    auth_token: SecretStr | None = None
    timeout_s: float = Field(default=120.0, gt=0)
    connect_timeout_s: float = Field(default=10.0, gt=0)
    max_file_size_bytes: int = Field(default=2 * GIB, gt=0)
    protected_entity: int = Field(default=1, ge=0, le=2**31 - 1)  # DSXA's tenant id: a 32-bit integer
    verify_tls: bool = True
    ca_bundle: str | None = Field(
        default=None, description="CA file the scanner's certificate is checked against"
    )
    client: Literal["http1", "aiohttp"] = Field(
        default="http1",
        description="the scan workers' HTTP client for connector reads and scanner posts (and "
        "/test/dsxa-connection): http1, the lean one, or aiohttp (docs/performance.md)",
    )

    @model_validator(mode="before")
    @classmethod
    def _accept_1x_names(cls, data: Any) -> Any:
        if isinstance(data, dict):
            data = dict(data)
            if "timeout_seconds" in data and "timeout_s" not in data:
                data["timeout_s"] = data.pop("timeout_seconds")
            if "base_url" in data and "scan_binary_url" not in data:
                data["scan_binary_url"] = str(data.pop("base_url")).rstrip("/") + "/scan/binary/v2"
        return data


class WorkersSettings(BaseModel):
    model_config = ConfigDict(extra="ignore")

    scan_request_batch_enabled: bool = True
    # items per connector submission and per task: per-batch costs (a task, a SQL transaction, a
    # store script, a notification) dominate a small file's below ~500 (docs/performance.md)
    scan_request_batch_default_size: int = Field(default=1000, ge=1, le=5000)
    scan_request_batch_max_size: int = Field(default=1000, ge=1, le=5000)
    scan_concurrency: int = Field(default=16, ge=1, le=256, description="items in flight per scan process")
    read_batch_size: int = Field(
        default=32,
        ge=1,
        le=32,
        description="small items read from a connector in one read_files call (1: one read_file each)",
    )
    max_retries: int = Field(default=5, ge=0, le=50)
    retry_backoff_s: float = Field(default=1.0, gt=0)
    retry_backoff_max_s: float = Field(default=60.0, gt=0)
    action_verdicts: list[str] = Field(default_factory=lambda: ["Malicious"])
    connector_timeout_s: float = Field(default=60.0, gt=0)
    max_queued_batches: int = Field(
        default=400,
        ge=1,
        description="scan_request_queue depth past which intake answers 429 (back-pressure)",
    )
    breaker_threshold: int = Field(
        default=3, ge=1, description="batches in a row whose scans all failed on the scanner before it opens"
    )
    breaker_open_s: float = Field(default=5.0, gt=0, description="first open period; doubles while it fails")
    breaker_open_max_s: float = Field(default=60.0, gt=0)
    visibility_timeout_s: int = Field(
        default=600,
        ge=5,
        description="a task held by a crashed worker is redelivered after this long; it bounds how "
        "long a task may wait for its countdown and run (see item_deadline_s)",
    )
    item_deadline_s: float = Field(
        default=240.0,
        gt=0,
        description="wall-clock bound of one item's read and scan (and of one verdict action call); "
        "an item past it is retried",
    )

    @property
    def longest_countdown_s(self) -> float:
        """The longest delay a task is published with: a retry, an open breaker, a paused job."""
        return max(self.retry_backoff_max_s, self.breaker_open_max_s + self.retry_backoff_s, 2.0)

    @property
    def task_time_limit_s(self) -> float:
        """A task is killed past this (and delivered again): it then no longer holds its message,
        so the redelivery after the visibility timeout never runs beside it."""
        return self.visibility_timeout_s - self.longest_countdown_s - 5

    @property
    def start_deadline_s(self) -> float:
        """A task starts no new item after running this long; the rest are handed back to the queue,
        and those started finish within ``item_deadline_s``, before the time limit."""
        return self.task_time_limit_s - self.item_deadline_s - 5

    @model_validator(mode="after")
    def _visibility_outlasts_tasks(self) -> WorkersSettings:
        needed = self.longest_countdown_s + 2 * self.item_deadline_s + 10
        if self.visibility_timeout_s < needed:
            raise ValueError(
                f"DSXCONNECT_WORKERS__VISIBILITY_TIMEOUT_S ({self.visibility_timeout_s}) must be at least "
                f"{needed:g} s: the longest task countdown ({self.longest_countdown_s:g} s, from "
                "DSXCONNECT_WORKERS__RETRY_BACKOFF_MAX_S, DSXCONNECT_WORKERS__BREAKER_OPEN_MAX_S) plus twice "
                f"DSXCONNECT_WORKERS__ITEM_DEADLINE_S ({self.item_deadline_s:g} s) plus 10 s; otherwise a task "
                "still waiting or running is delivered a second time"
            )
        if self.connector_timeout_s > self.item_deadline_s:
            raise ValueError(
                f"DSXCONNECT_WORKERS__CONNECTOR_TIMEOUT_S ({self.connector_timeout_s:g}) must not exceed "
                f"DSXCONNECT_WORKERS__ITEM_DEADLINE_S ({self.item_deadline_s:g})"
            )
        return self


class DeadLetterSettings(BaseModel):
    model_config = ConfigDict(extra="ignore")

    retain_s: int = Field(default=7 * 86400, ge=60, description="dead letters older than this are dropped")


class ConnectorsSettings(BaseModel):
    model_config = ConfigDict(extra="ignore")

    heartbeat_ttl_s: int = Field(default=180, ge=120)
    verify_tls: bool = True
    ca_bundle: str | None = None
    request_timeout_s: float = Field(default=15.0, gt=0)
    allow_link_local: bool = Field(
        default=False,
        description="accept connector URLs on link-local addresses (169.254.0.0/16: cloud metadata)",
    )
    allowed_networks: NetworkList = Field(
        default_factory=list,
        description="CIDR allow-list of connector addresses (CSV or JSON); unset: any non-refused address",
    )


class JobsSettings(BaseModel):
    model_config = ConfigDict(extra="ignore")

    stall_timeout_s: int = Field(default=900, ge=10, description="no progress this long marks a job failed")
    redispatch_after_s: float = Field(
        default=720.0,
        ge=1,
        description="an item's lease: an accepted item that no worker took for this long (its message "
        "was lost) is sent again; at least the workers' visibility timeout",
    )
    max_in_flight: int = Field(
        default=20_000,
        ge=1,
        description="accepted but unfinished items per job past which intake answers 429",
    )
    max_in_flight_total: int = Field(
        default=100_000,
        ge=1,
        description="accepted but unfinished items of all jobs together (queued, retrying, waiting on "
        "the breaker or a pause) past which intake answers 429",
    )
    retain_s: int = Field(default=30 * 86400, ge=3600)
    monitor_roll_s: int = Field(
        default=86400,
        ge=60,
        description="a connector's monitor job (its change events) rolls over to a new one after this long",
    )


REDIS_URL_PATTERN = r"^(redis|rediss|unix|redis\+sentinel|sentinel)://"


class TaskQueueSettings(BaseModel):
    """Celery's broker and result backend (1.x ``DSXCONNECT_TASKQUEUE__*``); unset: ``DSXCONNECT_REDIS_URL``.

    The core reads queue depths (back-pressure, lost-item recovery, ``/metrics``) from
    ``DSXCONNECT_REDIS_URL``: a broker elsewhere is accepted, with a warning at start saying so.
    """

    model_config = ConfigDict(extra="ignore")

    broker: str | None = Field(
        default=None, pattern=REDIS_URL_PATTERN, description="Celery broker URL (Redis)"
    )
    backend: str | None = Field(default=None, pattern=REDIS_URL_PATTERN, description="Celery result backend")


class SseSettings(BaseModel):
    """Server-sent event streams (``/subscribe/...``)."""

    model_config = ConfigDict(extra="ignore")

    ping_s: float = Field(default=15.0, gt=0, description="heartbeat comment interval")
    client_queue_size: int = Field(default=256, ge=1, le=100_000, description="events held per client")
    send_timeout_s: float = Field(default=30.0, gt=0, description="a client not reading this long is dropped")


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix="DSXCONNECT_", env_nested_delimiter="__", extra="ignore", populate_by_name=True
    )

    app_env: Literal["dev", "stag", "prod"] = Field(
        default="dev", validation_alias=AliasChoices("DSXCONNECT_APP_ENV", "APP_ENV")
    )
    redis_url: str = Field(
        default="redis://127.0.0.1:6379/0",
        pattern=REDIS_URL_PATTERN,
        validation_alias=AliasChoices("DSXCONNECT_REDIS_URL", "REDIS_URL"),
    )
    use_tls: bool = Field(default=False, validation_alias=AliasChoices("DSXCONNECT_USE_TLS", "USE_TLS"))
    tls_certfile: str | None = None
    tls_keyfile: str | None = None
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    max_request_bytes: int = Field(default=16 << 20, ge=1024, description="larger request bodies answer 413")
    redis_wait_replicas: int = Field(
        default=0,
        ge=0,
        le=16,
        description="replicas that must hold an accepted batch (and an action's claim) before the core "
        "answers or acts (Redis WAIT): with Sentinel, a failover then loses nothing acknowledged",
    )
    redis_wait_timeout_ms: int = Field(default=2000, ge=1, description="how long WAIT waits for them")
    api_workers: int = Field(
        default=1,
        ge=1,
        le=64,
        description="uvicorn worker processes of the API in the image (deploy/docker/entrypoint.py): one "
        "per core where the API's intake bounds throughput, as in a rescan (docs/deployment.md)",
    )

    auth: AuthSettings = Field(default_factory=AuthSettings)  # enrollment, DSX-HMAC, operator keys (SPEC §8)
    scanner: ScannerSettings = Field(default_factory=ScannerSettings)
    # DSXCONNECT_RESULTS_DB=<backend> beside DSXCONNECT_RESULTS_DB__RETAIN=… (results/settings.py)
    results_db: Annotated[ResultsDbSettings, ScalarKey("url")] = Field(default_factory=ResultsDbSettings)
    workers: WorkersSettings = Field(default_factory=WorkersSettings)
    scan_cache: ScanCacheSettings = Field(default_factory=ScanCacheSettings)  # unchanged-object index
    connectors: ConnectorsSettings = Field(default_factory=ConnectorsSettings)
    jobs: JobsSettings = Field(default_factory=JobsSettings)
    dlq: DeadLetterSettings = Field(default_factory=DeadLetterSettings)
    sse: SseSettings = Field(default_factory=SseSettings)
    taskqueue: TaskQueueSettings = Field(default_factory=TaskQueueSettings)  # Celery broker/backend (1.x)
    notifications: NotificationsSettings = Field(default_factory=NotificationsSettings)  # signed webhooks
    syslog: SyslogSettings = Field(default_factory=SyslogSettings)  # the feed's syslog output (1.x names too)
    superlog: SuperlogSettings = Field(default_factory=SuperlogSettings)  # the scan-result feed to SIEMs
    metrics: MetricsSettings = Field(default_factory=MetricsSettings)  # worker metrics port, minute history
    scheduler: SchedulerSettings = Field(default_factory=SchedulerSettings)  # scheduled full scans

    # Short aliases of the original guide, folded into the nested settings below.
    dsxa_scanner_url: str | None = Field(
        default=None, validation_alias=AliasChoices("DSXA_SCANNER_URL"), exclude=True, pattern=r"^https?://"
    )
    dsx_api_key: SecretStr | None = Field(
        default=None, validation_alias=AliasChoices("DSX_API_KEY"), exclude=True
    )

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        """The usual sources; the environment and ``.env`` accept plain values for ``ScalarKey`` models."""
        env, dotenv = accept_scalar_values(env_settings), accept_scalar_values(dotenv_settings)
        return init_settings, env, dotenv, file_secret_settings

    @model_validator(mode="after")
    def _fold_aliases(self) -> Settings:
        if self.dsxa_scanner_url and "scan_binary_url" not in self.scanner.model_fields_set:
            url = self.dsxa_scanner_url.rstrip("/")
            self.scanner.scan_binary_url = url if url.endswith("/v2") else url + "/scan/binary/v2"
        if self.dsx_api_key and self.scanner.auth_token is None:
            self.scanner.auth_token = self.dsx_api_key
        if self.use_tls and not (self.tls_certfile and self.tls_keyfile):
            raise ValueError("DSXCONNECT_USE_TLS needs DSXCONNECT_TLS_CERTFILE and DSXCONNECT_TLS_KEYFILE")
        return self

    @model_validator(mode="after")
    def _sentinel_url(self) -> Settings:
        from dsx_connect.redis_sentinel import SentinelUrlError, is_sentinel_url, parse_sentinel_url

        if is_sentinel_url(self.redis_url):
            try:
                parse_sentinel_url(self.redis_url)
            except SentinelUrlError as exc:
                raise ValueError(f"DSXCONNECT_REDIS_URL: {exc}") from None
        return self

    @model_validator(mode="after")
    def _lease_outlasts_redelivery(self) -> Settings:
        if self.jobs.redispatch_after_s < self.workers.visibility_timeout_s:
            raise ValueError(
                f"DSXCONNECT_JOBS__REDISPATCH_AFTER_S ({self.jobs.redispatch_after_s:g}) must be at least "
                f"DSXCONNECT_WORKERS__VISIBILITY_TIMEOUT_S ({self.workers.visibility_timeout_s}): an item "
                "whose task a crashed worker held comes back after the visibility timeout, and a shorter "
                "lease would send it a second time"
            )
        return self

    @model_validator(mode="after")
    def _resolve_superlog(self) -> Settings:
        self.superlog.resolve(self.syslog)  # 1.x: a syslog server alone turns the feed on
        return self

    @property
    def broker_url(self) -> str:
        """Celery's broker: ``DSXCONNECT_TASKQUEUE__BROKER``, else the Redis URL."""
        return self.taskqueue.broker or self.redis_url

    def redacted(self) -> dict[str, Any]:
        """Settings as shown by ``/config``: every secret masked."""
        shown = self.model_dump(mode="json", exclude={"dsxa_scanner_url", "dsx_api_key"})
        shown["redis_url"] = _redact_url(self.redis_url)
        shown["taskqueue"] = {k: _redact_url(v) if v else v for k, v in shown["taskqueue"].items()}
        for hook, url in zip(shown["notifications"]["webhooks"], self.notifications.webhooks, strict=True):
            hook["url"] = url.shown_url  # a query may carry a token
        return shown


#: names a model validator translates (DSX-Connect 1.x), by the model that reads them
LEGACY_NAMES: dict[type[BaseModel], tuple[str, ...]] = {
    ScannerSettings: ("timeout_seconds", "base_url"),
    SyslogSettings: ("syslog_server_url", "syslog_server_port"),
}
#: ``DSXCONNECT_`` names that are not the core's: 1.x connectors read them from a shared environment;
#: the compose file's own (core.env is both its --env-file and every core container's env_file)
NOT_OURS = (
    "DSXCONNECT_ENROLLMENT_TOKEN",
    "DSXCONNECT_IMAGE",
    "DSXCONNECT_API_HOST_PORT",
    "DSXCONNECT_SCAN_REQUEST_WORKER_CONCURRENCY",
    "DSXCONNECT_ENV_FILE",
)
#: ``DSXCONNECT_APP_ENV`` (or ``APP_ENV``) -> the dotenv file read
ENV_FILES = {"dev": ".env", "stag": ".env.staging", "prod": ".env.production"}


def env_file_for(environ: Mapping[str, str]) -> str:
    """The dotenv file the environment selects: ``.env``, ``.env.staging`` or ``.env.production``."""
    app_env = (environ.get("DSXCONNECT_APP_ENV") or environ.get("APP_ENV") or "dev").strip().lower()
    return ENV_FILES.get(app_env, ".env")  # a bad value is refused by the app_env field itself


def unknown_core_variables(environ: Mapping[str, str] = os.environ, env_file: str | None = None) -> list[str]:
    """``DSXCONNECT_*`` variables (environment and dotenv file) that no core setting reads."""
    names = dict(environ)
    path = Path(env_file or env_file_for(environ))
    if path.is_file():
        from dotenv import dotenv_values

        names.update({k: v or "" for k, v in dotenv_values(path).items()})
    return unknown_variables(Settings, names, LEGACY_NAMES, ignore=NOT_OURS)


def warn_about_unknown_variables(log: logging.Logger, environ: Mapping[str, str] = os.environ) -> list[str]:
    """Log one warning per ``DSXCONNECT_*`` variable the core ignores (a typo, a 1.x name without meaning)."""
    unknown = unknown_core_variables(environ)
    for name in unknown:
        log.warning("unknown setting %s is ignored: no DSXCONNECT_ setting has that name (a typo?)", name)
    return unknown


def warn_about_split_broker(settings: Settings, log: logging.Logger) -> None:
    """A broker on another Redis than DSXCONNECT_REDIS_URL: say what then reads the wrong queues."""
    if settings.taskqueue.broker and settings.taskqueue.broker != settings.redis_url:
        log.warning(
            "DSXCONNECT_TASKQUEUE__BROKER differs from DSXCONNECT_REDIS_URL: Celery uses the broker, but "
            "queue-depth back-pressure, lost-item recovery and /metrics queue depths read DSXCONNECT_REDIS_URL"
        )


def _redact_url(url: str) -> str:
    if "@" in url and "://" in url:
        scheme, rest = url.split("://", 1)
        return f"{scheme}://***@{rest.split('@', 1)[1]}"
    return url


@lru_cache
def get_settings() -> Settings:
    """The core's settings, read once from the environment and the dotenv file ``DSXCONNECT_APP_ENV``
    selects (``dev``: ``.env``, ``stag``: ``.env.staging``, ``prod``: ``.env.production``)."""
    settings = load_settings(Settings, _env_file=env_file_for(os.environ))
    register_secret(*settings.auth.secret_values())  # never written to a log line
    if settings.scanner.auth_token is not None:
        register_secret(settings.scanner.auth_token.get_secret_value())
    register_secret(*(hook.secret.get_secret_value() for hook in settings.notifications.webhooks))
    check_hot_path(settings)
    return settings


def check_hot_path(settings: Settings) -> None:
    """Stop at start, naming the variable, when the scan path could not work as configured: a
    ``DSXCONNECT_SCANNER__CLIENT`` not installed, or a proxy variable that would apply to the scanner
    (the hot path connects directly; ``dsx_connect.workers.proxy``)."""
    from dsx_connect.workers.proxy import refuse_proxied_scanner
    from dsx_connect.workers.transport import available

    if (why := available(settings.scanner.client)) is not None:
        raise SettingsError(f"invalid configuration:\n  DSXCONNECT_SCANNER__CLIENT: {why}")
    refuse_proxied_scanner(settings.scanner.scan_binary_url)
