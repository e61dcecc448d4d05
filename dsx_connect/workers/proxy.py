"""Proxies and the hot path: refused at start, with the variable named (docs/deployment.md#proxies).

The scan workers reach the scanner and the connectors directly: neither transport
(``DSXCONNECT_SCANNER__CLIENT``) speaks to a proxy, and ``/test/dsxa-connection`` and ``/readyz``
go the same way. A ``HTTP_PROXY``/``HTTPS_PROXY``/``ALL_PROXY`` that would apply to the scanner's URL
(its host not excluded by ``NO_PROXY``) would therefore be silently ignored; instead the core and
the workers stop at start saying which variable to unset or which host to add to ``NO_PROXY``.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from urllib.parse import urlsplit
from urllib.request import proxy_bypass_environment  # type: ignore[attr-defined]

from shared.settings import SettingsError

SCAN_URL_VARIABLE = "DSXCONNECT_SCANNER__SCAN_BINARY_URL"


def _proxy_variable(scheme: str, env: Mapping[str, str]) -> tuple[str, str] | None:
    """The variable (as spelt in ``env``) that names a proxy for ``scheme``, and its value."""
    for base in (f"{scheme}_proxy", "all_proxy"):
        for name in (base, base.upper()):  # the lower-case spelling wins, as for curl and urllib
            value = env.get(name, "").strip()
            if value:
                return name, value
    return None


def _no_proxy(env: Mapping[str, str]) -> str:
    return env.get("no_proxy", "") or env.get("NO_PROXY", "")


def proxy_for(url: str, env: Mapping[str, str] | None = None) -> tuple[str, str] | None:
    """The proxy variable that would apply to ``url`` (not bypassed by ``NO_PROXY``), if any."""
    env = os.environ if env is None else env
    parts = urlsplit(url)
    found = _proxy_variable(parts.scheme, env)
    if found is None or not parts.hostname:
        return None
    no_proxy = _no_proxy(env)
    if no_proxy and proxy_bypass_environment(parts.hostname, {"no": no_proxy}):
        return None
    return found


def refuse_proxied_scanner(scan_url: str, env: Mapping[str, str] | None = None) -> None:
    """Stop (``SettingsError``) when a proxy variable would apply to the scanner's URL."""
    found = proxy_for(scan_url, env)
    if found is None:
        return
    name, value = found
    host = urlsplit(scan_url).hostname
    shown = value if "@" not in value else value.split("://", 1)[0] + "://***@" + value.rsplit("@", 1)[1]
    raise SettingsError(
        "invalid configuration:\n"
        f"  {name}: set ({shown}) and it would apply to the scanner at {scan_url} ({SCAN_URL_VARIABLE}), "
        "but dsx-connect reaches the scanner and its connectors directly, never through a proxy: "
        f"add {host} to NO_PROXY, or unset {name}"
    )
