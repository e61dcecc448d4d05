"""Where results live: ``DSXCONNECT_RESULTS_DB`` and its ``DSXCONNECT_RESULTS_DB__…`` settings.

``DSXCONNECT_RESULTS_DB`` is ``redis`` (the default: the bounded Redis store alone), ``memory``
(no durable history: the same bounded Redis store, which the API and the workers, separate
processes, both reach; see ``dsx_connect/results/readers.py``), ``sqlite:///path`` or
``postgresql://user:pass@host/db`` (a durable SQL history of every result, beside the Redis cache).
A 1.x value ``redis://…`` means ``redis``. ``DSXCONNECT_RESULTS_DB__RETAIN`` bounds what is kept: a
count (``100000``), an age (``90d``; units ``s m h d w``), or both (``100000,90d``).
"""

from __future__ import annotations

import re
from enum import StrEnum
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator
from pydantic_settings import NoDecode

# about 1.5 KB of Redis per retained result (docs/performance.md): 75 MB at this bound
REDIS_DEFAULT_RETAIN = 50_000
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}
_AGE = re.compile(r"^(\d+)\s*([smhdw])$")


class ResultsBackend(StrEnum):
    REDIS = "redis"
    MEMORY = "memory"
    SQLITE = "sqlite"
    POSTGRESQL = "postgresql"


MAX_RETAINED_COUNT = 10**15
MAX_RETAINED_AGE_S = 1000 * 366 * 86400  # a thousand years


class Retention(BaseModel):
    """What the results history keeps: at most ``count`` results, none older than ``age_s``."""

    model_config = ConfigDict(frozen=True)

    # bounded so the SQL that applies them stays in a 64-bit integer (an offset, microseconds): a
    # larger value was accepted and every retention round then failed, deleting nothing
    count: int | None = Field(default=None, ge=1, le=MAX_RETAINED_COUNT)
    age_s: int | None = Field(default=None, ge=60, le=MAX_RETAINED_AGE_S)

    @classmethod
    def parse(cls, value: Any) -> Retention:
        """``100000``, ``90d``, ``100000,90d`` (either order), ``none``/empty (keep everything)."""
        if isinstance(value, Retention):
            return value
        if isinstance(value, dict):
            return cls.model_validate(value)
        if isinstance(value, int) and not isinstance(value, bool):
            return cls(count=value)
        text = str(value).strip().lower()
        if text in ("", "none", "all", "unlimited"):
            return cls()
        count: int | None = None
        age: int | None = None
        for token in filter(None, re.split(r"[,\s]+", text)):
            if token.isdigit() and count is None:
                count = int(token)
            elif (found := _AGE.match(token)) and age is None:
                age = int(found.group(1)) * _UNITS[found.group(2)]
            else:
                raise ValueError(
                    f"{token!r} is not a count (100000) or an age (90d, units s m h d w), each given once"
                )
        if count == 0:
            raise ValueError("a count of 0 keeps nothing: give at least 1, or none to keep everything")
        return cls(count=count, age_s=age)

    def describe(self) -> str:
        parts = [f"{self.count} results"] if self.count else []
        parts += [f"{self.age_s} s"] if self.age_s else []
        return " and ".join(parts) or "everything"


class ResultsDbSettings(BaseModel):
    """``DSXCONNECT_RESULTS_DB`` (the ``url``) and ``DSXCONNECT_RESULTS_DB__…``."""

    model_config = ConfigDict(extra="ignore")

    url: str = Field(default="redis", description="redis | memory | sqlite:///path | postgresql://…")
    # NoDecode: "100000,90d" is text, not JSON (pydantic-settings decodes nested model values as JSON)
    retain: Annotated[Retention, NoDecode] = Field(
        default_factory=Retention,
        description="count and/or age kept (50000, 90d, 50000,90d); redis/memory default 50000, SQL: everything",
    )
    cache_size: int = Field(
        default=REDIS_DEFAULT_RETAIN,
        ge=1,
        description="results Redis keeps for live views beside a SQL history",
    )
    request_state_ttl_s: int = Field(default=7 * 86400, ge=60)
    retention_interval_s: float = Field(default=300.0, gt=0, description="how often retention runs")
    retention_batch: int = Field(
        default=5000, ge=1, le=1_000_000, description="rows one retention delete removes"
    )
    migrate_on_start: bool = Field(default=True, description="the API upgrades the SQL schema when it starts")
    outbox_max: int = Field(
        default=200_000,
        ge=1000,
        description="results waiting for an unavailable history at most (~1 KB of Redis each); beyond, not parked",
    )

    @field_validator("retain", mode="before")
    @classmethod
    def _parse_retain(cls, value: Any) -> Retention:
        return Retention.parse(value)

    @field_validator("url")
    @classmethod
    def _known_backend(cls, value: str) -> str:
        value = value.strip()
        lowered = value.lower()
        if (
            lowered in ("redis", "memory")
            or lowered.startswith("redis://")
            or lowered.startswith("rediss://")
        ):
            return lowered if "://" not in lowered else "redis"
        if lowered.startswith("sqlite:///") and len(value) > len("sqlite:///"):
            return value
        if re.match(r"^(postgresql|postgres)(\+psycopg)?://[^/]+", lowered):
            return value
        raise ValueError(
            f"{value[:60]!r}: expected redis, memory, sqlite:///path/to/results.db or postgresql://user:pass@host/db"
        )

    @model_validator(mode="after")
    def _redis_keeps_a_bounded_count(self) -> ResultsDbSettings:
        if self.backend in (ResultsBackend.REDIS, ResultsBackend.MEMORY):
            if self.retain.age_s is not None:
                raise ValueError(
                    "DSXCONNECT_RESULTS_DB__RETAIN: an age needs a SQL history (sqlite:///… or postgresql://…);"
                    " with redis or memory give a count"
                )
            if self.retain.count is None and "retain" in self.model_fields_set:
                raise ValueError(
                    "DSXCONNECT_RESULTS_DB__RETAIN: redis and memory keep a bounded number of results; give a count"
                )
        return self

    @property
    def backend(self) -> ResultsBackend:
        if self.url.startswith("sqlite"):
            return ResultsBackend.SQLITE
        if self.url.startswith("postgres"):
            return ResultsBackend.POSTGRESQL
        return ResultsBackend(self.url)

    @property
    def durable(self) -> bool:
        """Whether a SQL history receives every result."""
        return self.backend in (ResultsBackend.SQLITE, ResultsBackend.POSTGRESQL)

    @property
    def redis_bound(self) -> int:
        """How many results Redis keeps: the retained count alone, or the live-view cache beside SQL."""
        if self.durable:  # never more than the history itself keeps
            return min(self.cache_size, self.retain.count or self.cache_size)
        return self.retain.count or REDIS_DEFAULT_RETAIN

    @property
    def sql_url(self) -> str:
        """The SQLAlchemy URL of the history (psycopg 3 for PostgreSQL)."""
        if self.backend is ResultsBackend.POSTGRESQL:
            return re.sub(r"^(postgresql|postgres)(\+psycopg)?://", "postgresql+psycopg://", self.url)
        if self.backend is ResultsBackend.SQLITE:
            return self.url
        raise ValueError(f"results backend {self.backend} has no SQL history")
