"""The security headers every answer carries (dsx_connect.api.middleware), in process."""

from __future__ import annotations

import httpx
import pytest
from starlette.applications import Starlette
from starlette.responses import PlainTextResponse
from starlette.routing import Route

from dsx_connect.api.middleware import RequestContextMiddleware

pytestmark = [pytest.mark.unit, pytest.mark.anyio]


def app() -> RequestContextMiddleware:
    return RequestContextMiddleware(Starlette(routes=[Route("/", lambda _request: PlainTextResponse("ok"))]))


@pytest.mark.parametrize("scheme", ["https", "http"])
async def test_an_https_answer_tells_browsers_to_keep_to_https(scheme: str) -> None:
    """No answer set Strict-Transport-Security, even over TLS: a network attacker could strip TLS
    from an operator's next visit. A plain-HTTP answer cannot set it (browsers ignore it there)."""
    transport = httpx.ASGITransport(app=app())
    async with httpx.AsyncClient(transport=transport, base_url=f"{scheme}://core") as http:
        answer = await http.get("/")
    assert answer.status_code == 200 and answer.headers["x-frame-options"] == "DENY"
    if scheme == "https":
        assert answer.headers["strict-transport-security"] == "max-age=31536000"
    else:
        assert "strict-transport-security" not in answer.headers
