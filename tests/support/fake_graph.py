"""A fake Microsoft Graph (and Entra login host) for the SharePoint and OneDrive connectors.

There is no Graph emulator, so this serves exactly the calls the connectors make, as Microsoft
documents them (learn.microsoft.com/graph/api: driveitem-get, driveitem-delta, driveitem-move,
driveitem-delete, driveitem-update, driveitem-post-children, listitem-update,
subscription-post-subscriptions, webhooks; Entra: v2.0 client credentials):

- ``/{tenant}/v2.0/.well-known/openid-configuration`` and ``/{tenant}/oauth2/v2.0/token``: client
  credentials with a secret or a certificate assertion (RS256 JWT checked against the registered
  certificate); tokens expire after ``token_ttl_s``; a wrong secret is ``invalid_client`` (401).
- ``/v1.0/sites/{hostname}:/{path}``, ``/sites/{id}/drive(s)``, ``/users/{upn}/drive``, ``/drives/{id}``.
- items by path (``/drives/{id}/root:/a/b``) or id (``/items/{id}``): GET, DELETE, PATCH (rename,
  move, description) with ``If-Match`` (412 on a stale eTag), ``POST .../children`` (folders;
  409 ``nameAlreadyExists``), ``:/listItem/fields``, ``/content`` (302 to a pre-authenticated
  download URL that honours ``Range``, answering 206).
- ``/drives/{id}/root/delta``: pages of ``$top`` items with ``@odata.nextLink``, then
  ``@odata.deltaLink``; items carry ``parentReference`` without ``path``, deleted items a
  ``deleted`` facet; ``token=latest``; tokens made stale by ``POST /_fake/expire-delta`` answer
  410 ``resyncRequired``.
- ``/v1.0/subscriptions``: POST validates the ``notificationUrl`` (``?validationToken=``, 200
  ``text/plain`` echo expected within 10 s), PATCH renews, DELETE removes.
- ``POST /_fake/throttle`` makes the next N Graph calls answer 429 (or 503) with ``Retry-After``.

Everything under ``/_fake`` is the tests' back door (no token): drives, files, stats. Run it with
``python -m tests.support.fake_graph --port P --tls-dir DIR`` (it writes ``DIR/fake-graph.crt``, the
CA file for ``DSXCONNECTOR_GRAPH_CA_BUNDLE``); :class:`FakeGraph` drives it from a test.
"""

from __future__ import annotations

import argparse
import itertools
import secrets
import ssl
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, quote, urlencode

import httpx
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, RedirectResponse, Response

MAX_TOP = 1000


def _now_iso(offset_s: float = 0.0) -> str:
    return (datetime.now(UTC) + timedelta(seconds=offset_s)).isoformat().replace("+00:00", "Z")


def graph_error(status: int, code: str, message: str, headers: dict[str, str] | None = None) -> JSONResponse:
    return JSONResponse({"error": {"code": code, "message": message}}, status_code=status, headers=headers)


@dataclass
class Node:
    """One driveItem: a folder or a file."""

    id: str
    name: str
    parent: str | None
    folder: bool
    content: bytes = b""
    version: int = 1
    seq: int = 0
    deleted: bool = False
    description: str | None = None
    fields: dict[str, Any] = field(default_factory=dict)

    @property
    def etag(self) -> str:
        return f'"{{{self.id}}},{self.version}"'


@dataclass
class Drive:
    id: str
    name: str
    nodes: dict[str, Node] = field(default_factory=dict)
    seq: int = 0
    #: delta tokens carry the epoch they were made in; an older one is expired (resyncRequired)
    epoch: int = 0

    def __post_init__(self) -> None:
        self.nodes["root"] = Node("root", "root", None, True)

    def touch(self, node: Node) -> None:
        self.seq += 1
        node.seq = self.seq

    def children(self, parent: str) -> list[Node]:
        return [n for n in self.nodes.values() if n.parent == parent and not n.deleted]

    def child(self, parent: str, name: str) -> Node | None:
        return next((n for n in self.children(parent) if n.name.lower() == name.lower()), None)

    def at(self, path: str) -> Node | None:
        node: Node | None = self.nodes["root"]
        for part in [p for p in path.strip("/").split("/") if p]:
            node = self.child(node.id, part) if node is not None and node.folder else None
        return node

    def path_of(self, node: Node) -> str:
        parts: list[str] = []
        while node.parent is not None:
            parts.append(node.name)
            node = self.nodes[node.parent]
        return "/".join(reversed(parts))

    def live(self, node: Node) -> bool:
        while node.parent is not None:
            if node.deleted:
                return False
            node = self.nodes[node.parent]
        return True


@dataclass
class Subscription:
    id: str
    resource: str
    url: str
    client_state: str | None
    expires: str


class FakeGraphState:
    """Everything the fake knows; one per process."""

    def __init__(self) -> None:
        self.clients: dict[str, str] = {}  # client id -> secret
        self.certificates: dict[str, bytes] = {}  # client id -> PEM certificate
        self.tokens: dict[str, float] = {}  # token -> expiry (epoch s)
        self.token_ttl_s = 3600.0
        self.drives: dict[str, Drive] = {}
        self.sites: dict[tuple[str, str], dict[str, Any]] = {}
        self.users: dict[str, str] = {}  # upn -> drive id
        self.subscriptions: dict[str, Subscription] = {}
        self.throttle_left = 0
        self.throttle_status = 429
        self.throttle_retry_after = "1"
        self.stats: dict[str, int] = {"tokens_issued": 0, "delta_items": 0, "throttled": 0, "requests": 0}
        self.download_keys: dict[str, tuple[str, str]] = {}
        self.ids = itertools.count(1)

    def new_id(self) -> str:
        return f"01FAKE{next(self.ids):010d}"


def create_app(public_url: str) -> FastAPI:
    """The fake's app; ``public_url`` is how clients reach it (links and token endpoints use it)."""
    app = FastAPI(title="fake Microsoft Graph", docs_url=None, redoc_url=None, openapi_url=None)
    state = FakeGraphState()
    app.state.fake = state

    # ------------------------------------------------------------------ login host

    @app.get("/{tenant}/v2.0/.well-known/openid-configuration")
    async def openid_configuration(tenant: str) -> dict[str, Any]:
        base = f"{public_url}/{tenant}"
        return {
            "issuer": f"{base}/v2.0",
            "authorization_endpoint": f"{base}/oauth2/v2.0/authorize",
            "token_endpoint": f"{base}/oauth2/v2.0/token",
            "device_authorization_endpoint": f"{base}/oauth2/v2.0/devicecode",
        }

    @app.post("/{tenant}/oauth2/v2.0/token")
    async def token(tenant: str, request: Request) -> JSONResponse:
        form = {k: v[0] for k, v in parse_qs((await request.body()).decode()).items()}
        client_id = str(form.get("client_id", ""))
        if form.get("grant_type") != "client_credentials" or not str(form.get("scope", "")).endswith(
            "/.default"
        ):
            return JSONResponse(
                {"error": "invalid_request", "error_description": "AADSTS900144"}, status_code=400
            )
        secret = form.get("client_secret")
        assertion = form.get("client_assertion")
        ok = False
        if secret is not None:
            ok = client_id in state.clients and secrets.compare_digest(str(secret), state.clients[client_id])
        elif assertion is not None and client_id in state.certificates:
            ok = _assertion_valid(str(assertion), state.certificates[client_id], client_id)
        if not ok:
            return JSONResponse(
                {
                    "error": "invalid_client",
                    "error_description": "AADSTS7000215: Invalid client secret provided.",
                },
                status_code=401,
            )
        value = secrets.token_urlsafe(24)
        state.tokens[value] = time.time() + state.token_ttl_s
        state.stats["tokens_issued"] += 1
        return JSONResponse(
            {"token_type": "Bearer", "expires_in": int(state.token_ttl_s), "access_token": value}
        )

    # ------------------------------------------------------------------ Graph: auth and throttling

    @app.middleware("http")
    async def guard(request: Request, call_next: Any) -> Response:
        if not request.url.path.startswith("/v1.0/"):
            return await call_next(request)
        state.stats["requests"] += 1
        if state.throttle_left > 0:
            state.throttle_left -= 1
            state.stats["throttled"] += 1
            return graph_error(
                state.throttle_status,
                "TooManyRequests" if state.throttle_status == 429 else "serviceNotAvailable",
                "Please retry after",
                {"Retry-After": state.throttle_retry_after},
            )
        auth = request.headers.get("authorization", "")
        value = auth.removeprefix("Bearer ") if auth.startswith("Bearer ") else ""
        if state.tokens.get(value, 0) < time.time():
            return graph_error(
                401, "InvalidAuthenticationToken", "Access token has expired or is not yet valid."
            )
        return await call_next(request)

    def drive_of(drive_id: str) -> Drive | None:
        return state.drives.get(drive_id)

    def item_json(drive: Drive, node: Node, *, with_path: bool = True) -> dict[str, Any]:
        body: dict[str, Any] = {"id": node.id, "name": node.name, "eTag": node.etag, "cTag": node.etag}
        if node.parent is None:
            body["root"] = {}
            body["folder"] = {"childCount": len(drive.children(node.id))}
            return body
        parent = drive.nodes[node.parent]
        reference: dict[str, Any] = {"driveId": drive.id, "id": parent.id}
        if with_path:
            above = drive.path_of(parent)
            reference["path"] = f"/drives/{drive.id}/root:" + (f"/{above}" if above else "")
        body["parentReference"] = reference
        if node.description is not None:
            body["description"] = node.description
        if node.folder:
            body["folder"] = {"childCount": len(drive.children(node.id))}
        else:
            body["file"] = {"mimeType": "application/octet-stream"}
            body["size"] = len(node.content)
            key = secrets.token_urlsafe(12)
            state.download_keys[key] = (drive.id, node.id)
            body["@microsoft.graph.downloadUrl"] = f"{public_url}/_download/{key}"
        return body

    # ------------------------------------------------------------------ sites, users, drives

    @app.get("/v1.0/sites/{address:path}")
    async def sites(address: str) -> Response:
        if ":" in address and not address.startswith(("drives", "root")):
            hostname, _, rest = address.partition(":")
            site = state.sites.get((hostname, rest.strip("/:").lower()))
            if site is None:
                return graph_error(404, "itemNotFound", "Requested site could not be found")
            return JSONResponse({"id": site["id"], "webUrl": site["webUrl"]})
        site_id, _, what = address.partition("/")
        site = next((s for s in state.sites.values() if s["id"] == site_id), None)
        if site is None:
            return graph_error(404, "itemNotFound", "Requested site could not be found")
        if what == "drive":
            drive = state.drives[site["drives"][0]]
            return JSONResponse({"id": drive.id, "name": drive.name, "driveType": "documentLibrary"})
        if what == "drives":
            value = [
                {
                    "id": d,
                    "name": state.drives[d].name,
                    "webUrl": f"{site['webUrl']}/{quote(state.drives[d].name)}",
                }
                for d in site["drives"]
            ]
            return JSONResponse({"value": value})
        return JSONResponse({"id": site["id"], "webUrl": site["webUrl"]})

    @app.get("/v1.0/users/{user}/drive")
    async def user_drive(user: str) -> Response:
        drive = state.drives.get(state.users.get(user.lower(), ""))
        if drive is None:
            return graph_error(404, "itemNotFound", "The resource could not be found.")
        return JSONResponse({"id": drive.id, "name": drive.name, "driveType": "business"})

    @app.api_route("/v1.0/drives/{drive_id}", methods=["GET"])
    async def get_drive(drive_id: str) -> Response:
        drive = drive_of(drive_id)
        if drive is None:
            return graph_error(404, "itemNotFound", "The resource could not be found.")
        used = sum(len(n.content) for n in drive.nodes.values() if not n.deleted)
        return JSONResponse(
            {
                "id": drive.id,
                "name": drive.name,
                "driveType": "business",
                "quota": {"used": used, "total": 1 << 40},
            }
        )

    # ------------------------------------------------------------------ items

    @app.api_route("/v1.0/drives/{drive_id}/{rest:path}", methods=["GET", "POST", "PATCH", "DELETE", "PUT"])
    async def drive_items(drive_id: str, rest: str, request: Request) -> Response:
        drive = drive_of(drive_id)
        if drive is None:
            return graph_error(404, "itemNotFound", "The resource could not be found.")
        if rest == "root/delta":
            return delta(drive, request)
        node, tail = locate(drive, rest)
        if node is None or not drive.live(node):
            return graph_error(404, "itemNotFound", "The resource could not be found.")
        method = request.method
        if tail == "content" and method == "GET":
            if node.folder:
                return graph_error(400, "invalidRequest", "not a file")
            return RedirectResponse(item_json(drive, node)["@microsoft.graph.downloadUrl"], status_code=302)
        if tail == "children" and method == "POST":
            return await create_child(drive, node, await request.json())
        if tail == "children" and method == "GET":
            return JSONResponse({"value": [item_json(drive, c) for c in drive.children(node.id)]})
        if tail == "listItem/fields":
            if method == "PATCH":
                node.fields.update(await request.json())
                drive.touch(node)
                node.version += 1
            return JSONResponse(node.fields)
        if tail:
            return graph_error(400, "invalidRequest", f"unsupported: {tail}")
        if method == "GET":
            return JSONResponse(item_json(drive, node))
        if node.parent is None:
            return graph_error(403, "accessDenied", "the root cannot be changed")
        match = request.headers.get("if-match")
        if match is not None and match not in ("*", node.etag):
            return graph_error(412, "preconditionFailed", "ETag does not match current item's value")
        if method == "DELETE":
            node.deleted = True
            drive.touch(node)
            return Response(status_code=204)
        if method == "PATCH":
            return patch_item(drive, node, await request.json())
        return graph_error(405, "methodNotAllowed", method)

    def locate(drive: Drive, rest: str) -> tuple[Node | None, str]:
        """``root``, ``root:/a/b``, ``root:/a/b:/content``, ``items/{id}/children`` → (node, tail)."""
        if rest.startswith("root:"):
            path, _, tail = rest[len("root:") :].partition(":")
            return drive.at(path), tail.strip("/")
        if rest == "root" or rest.startswith("root/"):
            return drive.nodes["root"], rest[len("root") :].strip("/")
        if rest.startswith("items/"):
            item_id, _, tail = rest[len("items/") :].partition("/")
            return drive.nodes.get(item_id), tail
        return None, ""

    async def create_child(drive: Drive, parent: Node, body: dict[str, Any]) -> Response:
        name = str(body.get("name", ""))
        if not name or "folder" not in body:
            return graph_error(400, "invalidRequest", "only folders are created here")
        if (
            drive.child(parent.id, name) is not None
            and body.get("@microsoft.graph.conflictBehavior", "fail") == "fail"
        ):
            return graph_error(409, "nameAlreadyExists", "The specified item name already exists.")
        node = Node(state.new_id(), name, parent.id, True)
        drive.nodes[node.id] = node
        drive.touch(node)
        return JSONResponse(item_json(drive, node), status_code=201)

    def patch_item(drive: Drive, node: Node, body: dict[str, Any]) -> Response:
        parent_id = (body.get("parentReference") or {}).get("id", node.parent)
        name = str(body.get("name", node.name))
        parent = drive.nodes.get(parent_id)
        if parent is None or not drive.live(parent):
            # as Graph answers a parentReference.id that names no item (or a deleted one)
            return graph_error(404, "itemNotFound", "The resource could not be found.")
        if not parent.folder:
            return graph_error(400, "invalidRequest", "the destination is not a folder")
        clash = drive.child(parent.id, name)
        if clash is not None and clash is not node:
            return graph_error(409, "nameAlreadyExists", "The specified item name already exists.")
        node.parent, node.name = parent.id, name
        if "description" in body:
            node.description = body["description"]
        node.version += 1
        drive.touch(node)
        return JSONResponse(item_json(drive, node))

    def delta(drive: Drive, request: Request) -> Response:
        query = request.query_params
        top = min(int(query.get("$top", "200")), MAX_TOP)
        link = f"{public_url}/v1.0/drives/{drive.id}/root/delta"
        if query.get("token") == "latest":
            return JSONResponse({"value": [], "@odata.deltaLink": f"{link}?token={drive.epoch}.{drive.seq}"})
        if "$skiptoken" in query:  # epoch.since.snapshot.after
            epoch, since, snapshot, after = (int(x) for x in query["$skiptoken"].split("."))
        elif "token" in query:  # epoch.seq
            epoch, since = (int(x) for x in query["token"].split("."))
            snapshot, after = drive.seq, since
        else:
            epoch, since, snapshot, after = drive.epoch, -1, drive.seq, -1
        if since >= 0 and epoch < drive.epoch:
            message = "Resync required. Replace any local items with the server's."
            return graph_error(410, "resyncRequired", message)
        changed = sorted((n for n in drive.nodes.values() if after < n.seq <= snapshot), key=lambda n: n.seq)
        if since < 0:
            changed = [n for n in changed if not n.deleted]
        page = changed[:top]
        value = []
        for node in page:
            if node.deleted or not drive.live(node):
                tombstone = {
                    "id": node.id,
                    "deleted": {"state": "deleted"},
                    "parentReference": {"driveId": drive.id},
                }
                value.append(tombstone)
            else:
                value.append(item_json(drive, node, with_path=False))
        state.stats["delta_items"] += len(value)
        if len(changed) > top:
            skip = f"{drive.epoch}.{since}.{snapshot}.{page[-1].seq}"
            return JSONResponse(
                {"value": value, "@odata.nextLink": f"{link}?{urlencode({'$skiptoken': skip, '$top': top})}"}
            )
        return JSONResponse({"value": value, "@odata.deltaLink": f"{link}?token={drive.epoch}.{snapshot}"})

    @app.get("/_download/{key}")
    async def download(key: str, request: Request) -> Response:
        found = state.download_keys.get(key)
        node = state.drives[found[0]].nodes.get(found[1]) if found else None
        if node is None or node.deleted:
            return graph_error(404, "itemNotFound", "The resource could not be found.")
        data = node.content
        wanted = request.headers.get("range", "")
        if wanted.startswith("bytes="):
            first, _, last = wanted[len("bytes=") :].partition("-")
            start, end = int(first), min(int(last) if last else len(data) - 1, len(data) - 1)
            headers = {"Content-Range": f"bytes {start}-{end}/{len(data)}"}
            return Response(
                data[start : end + 1], status_code=206, headers=headers, media_type="application/octet-stream"
            )
        return Response(data, media_type="application/octet-stream")

    # ------------------------------------------------------------------ subscriptions

    @app.post("/v1.0/subscriptions")
    async def subscribe(request: Request) -> Response:
        body = await request.json()
        url = str(body.get("notificationUrl", ""))
        challenge = secrets.token_urlsafe(16)
        try:
            async with httpx.AsyncClient(timeout=10.0, verify=False) as http:
                answer = await http.post(
                    url, params={"validationToken": challenge}, headers={"Content-Type": "text/plain"}
                )
            valid = (
                answer.status_code == 200
                and answer.text == challenge
                and answer.headers.get("content-type", "").startswith("text/plain")
            )
        except httpx.HTTPError:
            valid = False
        if not valid:
            return graph_error(
                400,
                "InvalidRequest",
                "Subscription validation request failed. Notification endpoint must respond with 200 OK to validation request.",
            )
        sub = Subscription(
            state.new_id(),
            str(body.get("resource")),
            url,
            body.get("clientState"),
            str(body.get("expirationDateTime")),
        )
        state.subscriptions[sub.id] = sub
        return JSONResponse(
            {
                "id": sub.id,
                "resource": sub.resource,
                "notificationUrl": url,
                "expirationDateTime": sub.expires,
                "changeType": body.get("changeType"),
            },
            status_code=201,
        )

    @app.api_route("/v1.0/subscriptions/{sub_id}", methods=["PATCH", "DELETE", "GET"])
    async def subscription(sub_id: str, request: Request) -> Response:
        sub = state.subscriptions.get(sub_id)
        if sub is None:
            return graph_error(404, "ResourceNotFound", "The object was not found.")
        if request.method == "DELETE":
            del state.subscriptions[sub_id]
            return Response(status_code=204)
        if request.method == "PATCH":
            sub.expires = str((await request.json()).get("expirationDateTime", sub.expires))
        return JSONResponse({"id": sub.id, "resource": sub.resource, "expirationDateTime": sub.expires})

    # ------------------------------------------------------------------ the tests' back door

    @app.get("/_fake/health")
    async def health() -> dict[str, str]:
        return {"status": "ok"}

    @app.post("/_fake/clients")
    async def add_client(body: dict[str, Any]) -> dict[str, str]:
        if body.get("secret"):
            state.clients[str(body["client_id"])] = str(body["secret"])
        if body.get("certificate"):
            state.certificates[str(body["client_id"])] = str(body["certificate"]).encode()
        return {"status": "ok"}

    @app.post("/_fake/drives")
    async def add_drive(body: dict[str, Any]) -> dict[str, str]:
        drive_id = str(body["id"])
        state.drives.setdefault(drive_id, Drive(drive_id, str(body.get("name") or drive_id)))
        if body.get("user"):
            state.users[str(body["user"]).lower()] = drive_id
        if body.get("site_host"):
            key = (str(body["site_host"]), str(body.get("site_path", "")).strip("/").lower())
            site = state.sites.setdefault(
                key,
                {"id": f"{key[0]},{state.new_id()}", "webUrl": f"https://{key[0]}/{key[1]}", "drives": []},
            )
            site["drives"].append(drive_id)
        return {"id": drive_id}

    @app.put("/_fake/drives/{drive_id}/content/{path:path}")
    async def put_file(drive_id: str, path: str, request: Request) -> Response:
        drive = state.drives[drive_id]
        parent = drive.nodes["root"]
        parts = [p for p in path.split("/") if p]
        folder_only = path.endswith("/")
        for part in parts if folder_only else parts[:-1]:
            child = drive.child(parent.id, part)
            if child is None:
                child = Node(state.new_id(), part, parent.id, True)
                drive.nodes[child.id] = child
                drive.touch(child)
            parent = child
        if folder_only:
            return JSONResponse({"id": parent.id})
        data = await request.body()
        node = drive.child(parent.id, parts[-1])
        if node is None:
            node = Node(state.new_id(), parts[-1], parent.id, False)
            drive.nodes[node.id] = node
        else:
            node.version += 1
        node.content = data
        drive.touch(node)
        return JSONResponse({"id": node.id, "eTag": node.etag})

    @app.get("/_fake/drives/{drive_id}/content/{path:path}")
    async def get_file(drive_id: str, path: str) -> Response:
        drive = state.drives.get(drive_id)
        node = drive.at(path) if drive else None
        if drive is None or node is None or node.folder or not drive.live(node):
            return Response(status_code=404)
        return Response(node.content, media_type="application/octet-stream")

    @app.get("/_fake/drives/{drive_id}/item/{path:path}")
    async def get_item(drive_id: str, path: str) -> Response:
        drive = state.drives[drive_id]
        node = drive.at(path)
        if node is None or not drive.live(node):
            return Response(status_code=404)
        return JSONResponse({**item_json(drive, node), "fields": node.fields})

    @app.get("/_fake/drives/{drive_id}/files")
    async def list_files(drive_id: str, prefix: str = "") -> list[str]:
        drive = state.drives[drive_id]
        paths = [drive.path_of(n) for n in drive.nodes.values() if not n.folder and drive.live(n)]
        return sorted(p for p in paths if p.startswith(prefix))

    @app.post("/_fake/drives/{drive_id}/bulk")
    async def bulk(drive_id: str, body: dict[str, Any]) -> dict[str, int]:
        """``count`` small files ``{folder}/f{n}.txt`` at once (large drives for tests)."""
        drive = state.drives[drive_id]
        folder = drive.nodes["root"]
        for part in [p for p in str(body.get("folder", "")).split("/") if p]:
            child = drive.child(folder.id, part) or Node(state.new_id(), part, folder.id, True)
            drive.nodes.setdefault(child.id, child)
            drive.touch(child)
            folder = child
        for n in range(int(body["count"])):
            node = Node(state.new_id(), f"f{n:06d}.txt", folder.id, False, content=b"benign %d\n" % n)
            drive.nodes[node.id] = node
            drive.touch(node)
        return {"count": int(body["count"])}

    @app.post("/_fake/expire-delta/{drive_id}")
    async def expire_delta(drive_id: str) -> dict[str, int]:
        drive = state.drives[drive_id]
        drive.epoch += 1
        return {"epoch": drive.epoch}

    @app.post("/_fake/throttle")
    async def throttle(body: dict[str, Any]) -> dict[str, int]:
        state.throttle_left = int(body.get("count", 1))
        state.throttle_status = int(body.get("status", 429))
        state.throttle_retry_after = str(body.get("retry_after", "1"))
        return {"count": state.throttle_left}

    @app.post("/_fake/tokens")
    async def tokens(body: dict[str, Any]) -> dict[str, int]:
        if body.get("revoke"):
            state.tokens.clear()
        if "ttl_s" in body:
            state.token_ttl_s = float(body["ttl_s"])
        return {"tokens": len(state.tokens)}

    @app.get("/_fake/stats")
    async def stats() -> dict[str, Any]:
        return {**state.stats, "subscriptions": [vars(s) for s in state.subscriptions.values()]}

    @app.post("/_fake/reset-stats")
    async def reset_stats() -> dict[str, str]:
        for key in state.stats:
            state.stats[key] = 0
        return {"status": "ok"}

    return app


def _assertion_valid(assertion: str, certificate: bytes, client_id: str) -> bool:
    """A client assertion signed by the registered certificate's key, issued by the client."""
    import jwt
    from cryptography import x509

    try:
        key = x509.load_pem_x509_certificate(certificate).public_key()
        claims = jwt.decode(assertion, key=key, algorithms=["RS256", "PS256"], options={"verify_aud": False})  # type: ignore[arg-type]
    except (jwt.PyJWTError, ValueError):
        return False
    return claims.get("iss") == client_id and claims.get("sub") == client_id


def write_certificate(folder: Path, hosts: tuple[str, ...] = ("127.0.0.1", "localhost")) -> tuple[Path, Path]:
    """A self-signed certificate (its own CA) for the fake's TLS: ``fake-graph.crt`` and ``.key``."""
    from cryptography import x509
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import ExtendedKeyUsageOID

    from devstack.certs import alt_names, private_pem, self_signed

    folder.mkdir(parents=True, exist_ok=True)
    crt, key_file = folder / "fake-graph.crt", folder / "fake-graph.key"
    if crt.is_file() and key_file.is_file():
        return crt, key_file
    key = ec.generate_private_key(ec.SECP256R1())
    public = key.public_key()
    cert = self_signed(
        key,
        "fake-graph",
        days=30,
        extensions=[
            (alt_names(hosts), False),
            (x509.BasicConstraints(ca=True, path_length=None), True),
            (x509.KeyUsage(True, False, False, False, False, True, False, False, False), True),
            (x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), False),
            (x509.SubjectKeyIdentifier.from_public_key(public), False),
            (x509.AuthorityKeyIdentifier.from_issuer_public_key(public), False),
        ],
    )
    key_file.write_bytes(private_pem(key))
    key_file.chmod(0o600)
    crt.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    return crt, key_file


# ---------------------------------------------------------------------- driving it from a test


class FakeGraph:
    """A running fake (its URL and CA file) and its back door."""

    def __init__(self, url: str, ca_file: Path) -> None:
        self.url = url
        self.ca_file = ca_file
        verify = ssl.create_default_context(cafile=str(ca_file))
        self.http = httpx.Client(base_url=url, verify=verify, timeout=30.0)

    def call(self, method: str, path: str, **kwargs: Any) -> Any:
        response = self.http.request(method, path, **kwargs)
        response.raise_for_status()
        return response.json() if response.content else None

    def add_client(self, client_id: str, secret: str | None = None, certificate: bytes | None = None) -> None:
        body = {
            "client_id": client_id,
            "secret": secret,
            "certificate": certificate.decode() if certificate else None,
        }
        self.call("POST", "/_fake/clients", json=body)

    def add_drive(self, drive_id: str, name: str, **where: str) -> None:
        self.call("POST", "/_fake/drives", json={"id": drive_id, "name": name, **where})

    def put(self, drive_id: str, path: str, data: bytes) -> None:
        self.call("PUT", f"/_fake/drives/{drive_id}/content/{quote(path)}", content=data)

    def get(self, drive_id: str, path: str) -> bytes | None:
        response = self.http.get(f"/_fake/drives/{drive_id}/content/{quote(path)}")
        return response.content if response.status_code == 200 else None

    def item(self, drive_id: str, path: str) -> dict[str, Any] | None:
        response = self.http.get(f"/_fake/drives/{drive_id}/item/{quote(path)}")
        return response.json() if response.status_code == 200 else None

    def files(self, drive_id: str, prefix: str = "") -> list[str]:
        return list(self.call("GET", f"/_fake/drives/{drive_id}/files", params={"prefix": prefix}))

    def stats(self) -> dict[str, Any]:
        return dict(self.call("GET", "/_fake/stats"))

    def close(self) -> None:
        self.http.close()


@contextmanager
def fake_graph_server(log_dir: Path) -> Iterator[FakeGraph]:
    """The fake on a free port (HTTPS with its own certificate), stopped on exit."""
    from tests.support.procs import PYTHON, ServiceProcess, base_env, free_port, wait_for

    port = free_port()
    tls = log_dir / f"fake-graph-{port}"
    crt, _ = write_certificate(tls)
    argv = [PYTHON, "-m", "tests.support.fake_graph", "--port", str(port), "--tls-dir", str(tls)]
    proc = ServiceProcess(f"fake-graph-{port}", argv, base_env(), log_dir).start()
    fake = FakeGraph(f"https://127.0.0.1:{port}", crt)

    def answers() -> bool:
        if not proc.alive():
            raise RuntimeError(f"the fake Graph exited:\n{proc.log_tail()}")
        return fake.http.get("/_fake/health", timeout=2.0).status_code == 200

    try:
        wait_for(answers, timeout=30, interval=0.1, what=f"the fake Graph on {fake.url}")
        yield fake
    finally:
        fake.close()
        proc.kill()  # in memory, nothing to flush


def main() -> None:
    import uvicorn

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--log-level", default="warning")
    parser.add_argument(
        "--tls-dir", type=Path, required=True, help="where fake-graph.crt/.key are (made if missing)"
    )
    args = parser.parse_args()
    crt, key = write_certificate(args.tls_dir)
    app = create_app(f"https://{args.host}:{args.port}")
    uvicorn.run(
        app,
        host=args.host,
        port=args.port,
        ssl_certfile=str(crt),
        ssl_keyfile=str(key),
        log_level=args.log_level,
        access_log=False,
    )


if __name__ == "__main__":
    main()
