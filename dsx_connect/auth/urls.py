"""Which connector URLs the core accepts at registration (SSRF: SPEC §8).

Workers only ever call the URL a connector registered (looked up by its uuid), never one taken from
a request body. What a registration may name is checked here: an http(s) URL without credentials,
and not a link-local address (169.254.0.0/16, fe80::/10: cloud metadata services live there) or a
well-known metadata host name, unless ``DSXCONNECT_CONNECTORS__ALLOW_LINK_LOCAL=true``. Unspecified
and multicast addresses are always refused. Loopback and private addresses are allowed: that is
where connectors usually run. Host names are not resolved (DNS can change after the check anyway);
put the core behind an egress policy when connectors come from untrusted networks.
"""

from __future__ import annotations

import ipaddress
import re
import socket
from urllib.parse import urlsplit

METADATA_HOSTS = frozenset(
    {"metadata", "metadata.google.internal", "metadata.goog", "instance-data", "instance-data.ec2.internal"}
)
_LEGACY_IPV4 = re.compile(r"^(0x[0-9a-f]+|[0-9]+)(\.(0x[0-9a-f]+|[0-9]+)){0,3}$", re.I)


def _address(host: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    try:
        address = ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        if not _LEGACY_IPV4.match(host):
            return None
        try:  # 2852039166, 0xa9fea9fe, 0251.0376.0251.0376: what inet_aton (and so many clients) accept
            return ipaddress.IPv4Address(socket.inet_aton(host))
        except OSError:
            return None
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped
    return address


def connector_url_problem(url: str, allow_link_local: bool = False) -> str | None:
    """Why ``url`` may not be registered as a connector's URL, or None when it may."""
    try:
        parts = urlsplit(url)
        host = (parts.hostname or "").lower().rstrip(".")
        parts.port  # noqa: B018 - raises on a bad port
    except ValueError:
        return "connector url is not a valid URL"
    if parts.scheme not in ("http", "https") or not host:
        return "connector url must be an http(s) URL including the connector's route prefix"
    if parts.username is not None or parts.password is not None:
        return "connector url must not carry credentials"
    address = _address(host)
    if address is not None and (address.is_unspecified or address.is_multicast):
        return f"connector url names an address no connector can have ({address})"
    if allow_link_local:
        return None
    if (address is not None and address.is_link_local) or host in METADATA_HOSTS:
        return (
            f"connector url points at a link-local or cloud metadata address ({host}); "
            "set DSXCONNECT_CONNECTORS__ALLOW_LINK_LOCAL=true if a connector really lives there"
        )
    return None
