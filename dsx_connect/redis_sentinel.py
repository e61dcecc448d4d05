"""Redis behind Sentinel: one URL form for the results, the pub/sub streams and the Celery broker.

``DSXCONNECT_REDIS_URL`` may name Sentinels instead of a server::

    redis+sentinel://[[user]:password@]host1:26379,host2:26379,host3:26379/<master name>[/<db>]
    sentinel://...  (the same)

The password (and user) are the master's; ``?sentinel_password=...`` authenticates to the Sentinels
when they require it. Every client asks the Sentinels for the current master and asks again after a
failover: redis-py's Sentinel pools for the core's own calls and pub/sub, kombu's ``sentinel``
transport for the broker.
"""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import parse_qs, unquote, urlsplit

SCHEMES = ("redis+sentinel", "sentinel")
SOCKET_TIMEOUT_S = 10.0


class SentinelUrlError(ValueError):
    pass


@dataclass(frozen=True)
class SentinelTarget:
    """Where the Sentinels are, which master they watch, and how to log in to it."""

    hosts: tuple[tuple[str, int], ...]
    master: str
    db: int = 0
    username: str | None = None
    password: str | None = None
    sentinel_password: str | None = None

    def celery_broker(self) -> tuple[str, dict[str, object]]:
        """The broker URL of kombu's ``sentinel`` transport and the transport options it needs."""
        auth = ""
        if self.password is not None:
            auth = f"{self.username or ''}:{self.password}@"
        url = ";".join(f"sentinel://{auth}{host}:{port}/{self.db}" for host, port in self.hosts)
        options: dict[str, object] = {"master_name": self.master}
        if self.sentinel_password is not None:
            options["sentinel_kwargs"] = {"password": self.sentinel_password}
        return url, options

    def sentinel_kwargs(self) -> dict[str, object]:
        kwargs: dict[str, object] = {"socket_timeout": SOCKET_TIMEOUT_S}
        if self.sentinel_password is not None:
            kwargs["password"] = self.sentinel_password
        return kwargs

    def master_kwargs(self) -> dict[str, object]:
        kwargs: dict[str, object] = {"db": self.db}
        if self.username is not None:
            kwargs["username"] = self.username
        if self.password is not None:
            kwargs["password"] = self.password
        return kwargs


def is_sentinel_url(url: str) -> bool:
    return url.split("://", 1)[0].lower() in SCHEMES


def parse_sentinel_url(url: str) -> SentinelTarget:
    """The Sentinel target of a ``redis+sentinel://`` or ``sentinel://`` URL; raises with the reason."""
    parts = urlsplit(url)
    if parts.scheme.lower() not in SCHEMES:
        raise SentinelUrlError(f"not a Sentinel URL (scheme {parts.scheme!r})")
    userinfo, _, hostlist = parts.netloc.rpartition("@")
    hosts: list[tuple[str, int]] = []
    for item in hostlist.split(","):
        host, _, port = item.strip().rpartition(":")
        if not host:
            host, port = item.strip(), "26379"
        try:
            hosts.append((host.strip("[]"), int(port)))
        except ValueError:
            raise SentinelUrlError(f"bad Sentinel address {item!r} (host:port)") from None
    if not hosts or not all(host for host, _ in hosts):
        raise SentinelUrlError("no Sentinel host given")
    path = [p for p in parts.path.split("/") if p]
    if not path:
        raise SentinelUrlError(
            "the master name is missing: redis+sentinel://host:26379,.../<master name>[/<db>]"
        )
    try:
        db = int(path[1]) if len(path) > 1 else 0
    except ValueError:
        raise SentinelUrlError(f"the database must be a number, not {path[1]!r}") from None
    username = password = None
    if userinfo:
        user, has_password, secret = userinfo.partition(":")
        username = unquote(user) or None
        password = unquote(secret) if has_password else None
    query = parse_qs(parts.query)
    sentinel_password = query.get("sentinel_password", [None])[0]
    return SentinelTarget(tuple(hosts), unquote(path[0]), db, username, password, sentinel_password)
