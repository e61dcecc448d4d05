"""Who may call what (SPEC §8): one table for every route of the core, read by the auth middleware.

Access levels:

- ``public``: anybody (probes, API docs, the dashboard's static files, login).
- ``limited``: anybody, but callers without an operator credential see only a fixed subset of the
  answer: a job's ``paused``/``cancel`` flags, the batching keys of ``/config``.
- ``enroll``: an enrollment token (``X-Enrollment-Token`` or ``Authorization: Bearer``).
- ``connector``: a connector's DSX-HMAC signature (or an operator credential); a connector acts only
  for itself (``owner``: the ``{uuid}`` in the path, the connector of each scan request, the
  connector of the job).
- ``operator``: an API key or a login session; a connector's signature is refused with 403.

Matching is done here on the path, not through the router: any path under the API prefix that is
not listed (a route added later, or none at all) is ``operator``, closed until someone opens it;
outside the prefix only ``/metrics`` is closed, the rest being probes, API docs and the dashboard's
static files (add a root-level route that needs a credential to :data:`ROOT_OPERATOR`).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, Literal

from starlette.routing import compile_path

API = "/dsx-connect/api/v1"

Access = Literal["public", "limited", "enroll", "connector", "operator"]
Owner = Literal["path", "request", "batch", "job"]


@dataclass(frozen=True, slots=True)
class Rule:
    access: Access
    owner: Owner | None = None
    view: Literal["config", "job_flags"] | None = None


PUBLIC = Rule("public")
OPERATOR = Rule("operator")

_PROBES = ("/alive", "/ping", "/healthz", "/readyz")

RULES: dict[tuple[str, str], Rule] = {
    **{("GET", path): PUBLIC for path in _PROBES},
    **{("GET", API + path): PUBLIC for path in _PROBES},
    ("GET", API + "/meta"): PUBLIC,
    ("GET", API + "/version"): PUBLIC,  # the dashboard's badge before sign-in; /meta says as much
    ("GET", "/docs"): PUBLIC,
    ("GET", "/docs/oauth2-redirect"): PUBLIC,
    ("GET", "/redoc"): PUBLIC,
    ("GET", API + "/openapi.json"): PUBLIC,
    ("POST", API + "/auth/login"): PUBLIC,
    ("POST", API + "/auth/logout"): PUBLIC,
    ("GET", API + "/auth/session"): PUBLIC,
    # the two unsigned reads a connector needs to run (SPEC §8)
    ("GET", API + "/config"): Rule("limited", view="config"),
    ("GET", API + "/scan/jobs/{job_id}/raw"): Rule("limited", view="job_flags"),
    # enrollment
    ("POST", API + "/connectors/register"): Rule("enroll"),
    # what connectors call, signed
    ("POST", API + "/scan/request"): Rule("connector", owner="request"),
    ("POST", API + "/scan/request_batch"): Rule("connector", owner="batch"),
    ("POST", API + "/scan/jobs/{job_id}/enqueue_done"): Rule("connector", owner="job"),
    ("PUT", API + "/connectors/state/{uuid}/{namespace}/{key}"): Rule("connector", owner="path"),
    ("GET", API + "/connectors/state/{uuid}/{namespace}/{key}"): Rule("connector", owner="path"),
    ("DELETE", API + "/connectors/unregister/{uuid}"): Rule("connector", owner="path"),
    ("GET", API + "/connection/test"): Rule("connector"),
}

#: the keys of ``GET /config`` readable without an operator credential
BATCH_KEYS = ("scan_request_batch_enabled", "scan_request_batch_default_size", "scan_request_batch_max_size")
#: the fields of ``GET /scan/jobs/{id}/raw`` readable without a credential (and by connectors)
JOB_FLAGS = ("paused", "cancel")


#: root-level paths (outside the API prefix) that need an operator credential
ROOT_OPERATOR = ("/metrics",)

_COMPILED: list[tuple[str, re.Pattern[str], dict[str, Any], Rule]] = []
for (_method, _template), _rule in RULES.items():
    _regex, _format, _convertors = compile_path(_template)
    _COMPILED.append((_method, _regex, _convertors, _rule))


def match_rule(method: str, path: str) -> tuple[Rule, dict[str, Any]]:
    """The rule for a request, and its path parameters (``{uuid}``, ``{job_id}``) when listed."""
    method = "GET" if method == "HEAD" else method
    for wanted, regex, convertors, rule in _COMPILED:
        if wanted == method and (found := regex.match(path)):
            return rule, {k: convertors[k].convert(v) for k, v in found.groupdict().items()}
    if path == API or path.startswith(API + "/") or path in ROOT_OPERATOR:
        return OPERATOR, {}
    return PUBLIC, {}
