"""Who is calling, as the auth layer (:mod:`dsx_connect.auth.middleware`) found it."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from starlette.requests import HTTPConnection

Kind = Literal["operator", "connector", "anonymous"]


@dataclass(frozen=True, slots=True)
class Principal:
    """An operator, a connector (by uuid), or nobody; ``presented`` is the credential an anonymous
    caller sent that did not check out (``api_key``), so a refusal can say why."""

    kind: Kind
    uuid: str | None = None
    presented: str | None = None

    @property
    def is_operator(self) -> bool:
        return self.kind == "operator"

    @property
    def is_connector(self) -> bool:
        return self.kind == "connector"


ANONYMOUS = Principal("anonymous")
OPERATOR = Principal("operator")


def principal_of(connection: HTTPConnection) -> Principal:
    """The caller of this request: as the auth layer found it; an operator when auth is off; nobody
    when auth is on but the layer did not see the request (deny by default)."""
    found = connection.scope.get("state", {}).get("principal")
    if isinstance(found, Principal):
        return found
    auth_on = getattr(getattr(connection.scope.get("app"), "state", None), "auth_enabled", False)
    return ANONYMOUS if auth_on else OPERATOR
