"""Which addresses the core may call as a connector (SSRF: SPEC §8), at registration and at connect time.

Workers only ever call the URL a connector registered (looked up by its uuid), never one taken from
a request body. What a registration may name, and what a call may connect to, is decided here:

- The URL: http(s), a host, no credentials, no query and no fragment (not even a bare ``?``: the
  core appends its own paths and queries to it).
- Every address the host resolves to: never unspecified, multicast or reserved; never link-local
  (169.254.0.0/16, fe80::/10), a cloud metadata address (169.254.169.254, ``fd00:ec2::254``,
  ``100.100.100.200``) or a metadata host name; never NAT64 (``64:ff9b::/96``, ``64:ff9b:1::/48``),
  and the IPv4 address embedded in an IPv4-mapped, IPv4-compatible or 6to4 address is checked as
  IPv4. ``DSXCONNECT_CONNECTORS__ALLOW_LINK_LOCAL=true`` reopens link-local and metadata addresses.
- ``DSXCONNECT_CONNECTORS__ALLOWED_NETWORKS`` (CIDR list), when set, is an allow-list: every
  address must lie in one of them; a listed network also reopens what it covers of the refused
  ranges above (but never unspecified or multicast). Unset: loopback, private and public addresses
  are allowed (where connectors usually run).

DNS rebinding: registration checks the names it is given, and the core's clients check again at
connect time and connect to the address they checked (:func:`guarded_transport` for httpx,
:func:`connect_address` for the workers' hot-path client). :data:`RESOLVER` is the one resolver
both use; tests replace it to make a name resolve to a forbidden address.
"""

from __future__ import annotations

import asyncio
import ipaddress
import re
import socket
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from functools import lru_cache
from typing import Any
from urllib.parse import urlsplit

import httpcore
import httpx

from shared.errors import PermanentError

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network

METADATA_HOSTS = frozenset(
    {"metadata", "metadata.google.internal", "metadata.goog", "instance-data", "instance-data.ec2.internal"}
)
METADATA_ADDRESSES = frozenset(
    ipaddress.ip_address(a) for a in ("169.254.169.254", "fd00:ec2::254", "100.100.100.200", "169.254.170.2")
)
NAT64 = (ipaddress.ip_network("64:ff9b::/96"), ipaddress.ip_network("64:ff9b:1::/48"))
_LEGACY_IPV4 = re.compile(r"^(0x[0-9a-f]+|[0-9]+)(\.(0x[0-9a-f]+|[0-9]+)){0,3}$", re.I)


class AddressRefused(httpx.ConnectError):
    """A connection to a forbidden address was not made (raised inside the core's HTTP clients);
    ``unresolved``: the name did not resolve (may be transient), else the address is refused."""

    def __init__(self, message: str, *, unresolved: bool = False) -> None:
        super().__init__(message)
        self.unresolved = unresolved


@dataclass(frozen=True, slots=True)
class AddressPolicy:
    """What the core may connect to as a connector (from ``DSXCONNECT_CONNECTORS__*``)."""

    allow_link_local: bool = False
    allowed_networks: tuple[IPNetwork, ...] = ()

    @classmethod
    def from_settings(cls, connectors: Any) -> AddressPolicy:
        return cls(
            allow_link_local=bool(getattr(connectors, "allow_link_local", False)),
            allowed_networks=tuple(getattr(connectors, "allowed_networks", ()) or ()),
        )


def _system_resolver(host: str, port: int) -> list[str]:
    infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return list(dict.fromkeys(str(info[4][0]) for info in infos))


#: ``(host, port) -> [address, ...]``; raises ``OSError`` when the name does not resolve
RESOLVER: Callable[[str, int], list[str]] = _system_resolver


def _literal(host: str) -> IPAddress | None:
    """The address a host string denotes literally (also the legacy forms ``inet_aton`` accepts)."""
    try:
        return ipaddress.ip_address(host.strip("[]").split("%", 1)[0])
    except ValueError:
        if not _LEGACY_IPV4.match(host):
            return None
        try:  # 2852039166, 0xa9fea9fe, 0251.0376.0251.0376: what inet_aton (and so many clients) accept
            return ipaddress.IPv4Address(socket.inet_aton(host))
        except OSError:
            return None


def _embedded_ipv4(address: ipaddress.IPv6Address) -> ipaddress.IPv4Address | None:
    if address.ipv4_mapped is not None:
        return address.ipv4_mapped
    if address.sixtofour is not None:
        return address.sixtofour
    if (int(address) >> 32 == 0 and int(address) > 1) or address in NAT64[0]:  # ::a.b.c.d, 64:ff9b::a.b.c.d
        return ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
    return None


def address_problem(address: IPAddress, policy: AddressPolicy) -> str | None:
    """Why the core may not connect to ``address`` as a connector, or None when it may."""
    inner = _embedded_ipv4(address) if isinstance(address, ipaddress.IPv6Address) else None
    if inner is not None and (problem := address_problem(inner, policy)):
        return f"{address} embeds {inner}: {problem}"
    if address.is_unspecified or address.is_multicast:
        return f"{address} is an address no connector can have"
    listed = any(address.version == net.version and address in net for net in policy.allowed_networks)
    if policy.allowed_networks and not listed:
        return f"{address} is not in DSXCONNECT_CONNECTORS__ALLOWED_NETWORKS"
    if listed:
        return None
    if address in METADATA_ADDRESSES or address.is_link_local:
        if policy.allow_link_local:
            return None
        return (
            f"{address} is a link-local or cloud metadata address; set "
            "DSXCONNECT_CONNECTORS__ALLOW_LINK_LOCAL=true (or list it in DSXCONNECT_CONNECTORS__ALLOWED_NETWORKS) "
            "if a connector really lives there"
        )
    if isinstance(address, ipaddress.IPv6Address) and any(address in net for net in NAT64):
        return f"{address} is a NAT64 address (it reaches any IPv4 address); list it in ALLOWED_NETWORKS to allow it"
    if address.is_loopback:
        return None
    if address.is_reserved and inner is None:  # (::ffff:a.b.c.d and the like are judged by what they embed)
        return f"{address} is a reserved address"
    return None


def resolve(host: str, port: int) -> list[IPAddress]:
    """The addresses ``host`` stands for (itself when it is an address); ``OSError`` when none."""
    if (literal := _literal(host)) is not None:
        return [literal]
    return [ipaddress.ip_address(a.split("%", 1)[0]) for a in RESOLVER(host, port)]


def checked_addresses(host: str, port: int, policy: AddressPolicy) -> list[IPAddress]:
    """The resolved addresses of ``host`` the core may connect to; ``AddressRefused`` when none."""
    name = host.lower().rstrip(".").strip("[]")
    if name in METADATA_HOSTS and not policy.allow_link_local:
        raise AddressRefused(f"{host} is a cloud metadata host name")
    try:
        found = resolve(name, port)
    except (OSError, ValueError, UnicodeError) as exc:
        raise AddressRefused(f"{host} does not resolve ({type(exc).__name__})", unresolved=True) from None
    allowed = [a for a in found if address_problem(a, policy) is None]
    if not allowed:
        problems = "; ".join(str(address_problem(a, policy)) for a in found) or "no address"
        raise AddressRefused(f"connecting to {host} refused: {problems}")
    return allowed


async def connect_address(host: str, port: int, policy: AddressPolicy) -> str:
    """The address to connect to for ``host`` (checked now, at connect time).

    For clients that open their own sockets (the workers' hot-path pool): connect to the returned
    address, and keep ``host`` for TLS (``server_hostname``) and the ``Host`` header. Raises
    ``PermanentError`` for a refused address, ``OSError`` for a name that does not resolve.
    """
    try:
        if (literal := _literal(host)) is not None:
            if problem := address_problem(literal, policy):
                raise AddressRefused(f"connecting to {host} refused: {problem}")
            return str(literal)
        addresses = await asyncio.to_thread(checked_addresses, host, port, policy)
    except AddressRefused as exc:
        if exc.unresolved:
            raise OSError(str(exc)) from None
        raise PermanentError(str(exc), status_code=403) from None
    return str(addresses[0])


@lru_cache(maxsize=1)
def _settings_policy() -> AddressPolicy:
    from dsx_connect.settings import get_settings

    return AddressPolicy.from_settings(get_settings().connectors)


async def connector_address(host: str, port: int) -> str:
    """:func:`connect_address` under the settings' policy (``DSXCONNECT_CONNECTORS__*``)."""
    return await connect_address(host, port, _settings_policy())


def connector_url_problem(
    url: str, policy: AddressPolicy | bool = False, *, check_dns: bool = True
) -> str | None:
    """Why ``url`` may not be registered as a connector's URL, or None when it may.

    ``policy`` may be a bool (the 1.x ``allow_link_local`` flag). Host names are resolved and every
    address they resolve to must pass (``check_dns=False`` checks literal addresses only).
    """
    if isinstance(policy, bool):
        policy = AddressPolicy(allow_link_local=policy)
    try:
        parts = urlsplit(url)
        host = (parts.hostname or "").lower().rstrip(".")
        port = parts.port or (443 if parts.scheme == "https" else 80)
    except ValueError:
        return "connector url is not a valid URL"
    if parts.scheme not in ("http", "https") or not host:
        return "connector url must be an http(s) URL including the connector's route prefix"
    if parts.username is not None or parts.password is not None:
        return "connector url must not carry credentials"
    if "?" in url or "#" in url:
        return "connector url must not carry a query or a fragment (not even a trailing '?')"
    if not check_dns and _literal(host) is None:
        if host in METADATA_HOSTS and not policy.allow_link_local:
            return f"connector url points at a cloud metadata host name ({host})"
        return None
    try:
        found = resolve(host, port) if _literal(host) is not None or host not in METADATA_HOSTS else []
    except (OSError, ValueError, UnicodeError):
        return f"connector url's host {host} does not resolve"
    if host in METADATA_HOSTS and not policy.allow_link_local:
        return (
            f"connector url points at a link-local or cloud metadata address ({host}); "
            "set DSXCONNECT_CONNECTORS__ALLOW_LINK_LOCAL=true if a connector really lives there"
        )
    for address in found:
        if problem := address_problem(address, policy):
            return f"connector url's host {host} resolves to a refused address: {problem}"
    return None


class _GuardedBackend(httpcore.NetworkBackend):
    """httpcore's sync backend, connecting only to addresses :func:`checked_addresses` allows."""

    def __init__(self, policy: AddressPolicy) -> None:
        self.policy = policy
        self._inner = httpcore.SyncBackend()

    def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Iterable[Any] | None = None,
    ) -> httpcore.NetworkStream:
        address = str(checked_addresses(host, port, self.policy)[0])
        return self._inner.connect_tcp(address, port, timeout, local_address, socket_options)

    def connect_unix_socket(
        self, path: str, timeout: float | None = None, socket_options: Iterable[Any] | None = None
    ) -> httpcore.NetworkStream:
        raise AddressRefused("connectors are reached over TCP only")

    def sleep(self, seconds: float) -> None:
        self._inner.sleep(seconds)


def guarded_transport(policy: AddressPolicy, **kwargs: Any) -> httpx.HTTPTransport:
    """An httpx transport that resolves and checks each connection's address when it is opened (no
    DNS rebinding between registration and call); ``kwargs`` as for ``httpx.HTTPTransport``."""
    transport = httpx.HTTPTransport(**kwargs)
    # httpx builds its httpcore pool itself; only the network backend is ours (a public httpcore seam)
    transport._pool._network_backend = _GuardedBackend(policy)
    return transport
