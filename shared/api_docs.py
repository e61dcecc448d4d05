"""The interactive API docs (Swagger UI), served by the service itself.

FastAPI's own ``/docs`` and ``/redoc`` pages load Swagger UI and ReDoc from a CDN: on the core, a
compromised CDN would have run its script on the dashboard's origin, beside the operator's session,
and an air-gapped site had no docs at all. Here the page, its script and its styles come from the
``fastapi-offline`` package (Swagger UI 5, which reads FastAPI's OpenAPI 3.1), and the page has no
inline script (the start-up call is a file of its own), so it is served under a
``Content-Security-Policy`` like the rest. ReDoc is not offered: ``/redoc`` redirects to the
docs, so that a kept link still leads somewhere (routes change additively, SPEC §10).

The routes are plain Starlette routes, outside the API's access rules, as FastAPI's are: the docs
describe what the OpenAPI document already does, and that document is public.
"""

from __future__ import annotations

import json
from html import escape
from importlib.resources import files
from pathlib import Path

from fastapi import FastAPI
from starlette.requests import Request
from starlette.responses import FileResponse, HTMLResponse, RedirectResponse, Response

#: where fastapi-offline keeps Swagger UI's files (only the files are used, not its FastAPI class)
STATIC = Path(str(files("fastapi_offline") / "static"))

#: Swagger UI's files the page loads, by name
ASSETS = {
    "swagger-ui-bundle.js": "text/javascript; charset=utf-8",
    "swagger-ui.css": "text/css; charset=utf-8",
    "favicon.png": "image/png",
}
_CACHE = {"cache-control": "public, max-age=86400"}


def install_api_docs(app: FastAPI, docs_url: str) -> None:
    """``GET docs_url``: Swagger UI for the app's OpenAPI document (an app made with ``docs_url``
    and ``redoc_url`` None); its files under ``docs_url/``; ``/redoc`` (FastAPI's other page)
    redirects there."""
    openapi_url, title = app.openapi_url or "/openapi.json", app.title
    page = (
        '<!doctype html>\n<html lang="en"><head><meta charset="utf-8">'
        f"<title>{escape(title)} API</title>"
        f'<link rel="stylesheet" href="{docs_url}/swagger-ui.css">'
        f'<link rel="icon" type="image/png" href="{docs_url}/favicon.png">'
        '</head><body><div id="swagger-ui"></div>'
        f'<script src="{docs_url}/swagger-ui-bundle.js"></script>'
        f'<script src="{docs_url}/start.js"></script>'
        "</body></html>\n"
    )
    start = (
        f"SwaggerUIBundle({{url: {json.dumps(openapi_url)}, dom_id: '#swagger-ui', deepLinking: true,"
        " presets: [SwaggerUIBundle.presets.apis], layout: 'BaseLayout'});\n"
    )

    async def docs_page(request: Request) -> Response:
        return HTMLResponse(page)

    async def start_script(request: Request) -> Response:
        return Response(start, media_type="text/javascript; charset=utf-8")

    async def asset(request: Request) -> Response:
        name = request.url.path.rsplit("/", 1)[1]
        return FileResponse(STATIC / name, media_type=ASSETS[name], headers=_CACHE)

    async def to_docs(request: Request) -> Response:
        return RedirectResponse(docs_url)

    app.add_route(docs_url, docs_page, include_in_schema=False)
    app.add_route("/redoc", to_docs, include_in_schema=False)
    app.add_route(f"{docs_url}/start.js", start_script, include_in_schema=False)
    for name in ASSETS:
        app.add_route(f"{docs_url}/{name}", asset, include_in_schema=False)
