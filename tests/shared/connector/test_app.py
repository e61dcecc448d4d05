"""The SPEC §1/§5 routes the framework serves for any connector (here an in-memory one)."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator

import httpx
import pytest
from fastapi import HTTPException, Request

from shared.batch_read import MAX_ITEM_BYTES, MAX_ITEMS, MEDIA_TYPE, iter_frames
from shared.connector import create_connector_app
from tests.shared.connector.memory_connector import MemoryConnector, MemorySettings
from tests.support.auth import CONNECTOR_AUTH, core_signer

pytestmark = [pytest.mark.unit, pytest.mark.anyio]

PREFIX = "/memory-connector"
RFC3339_UTC = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z$")


@pytest.fixture
def connector() -> MemoryConnector:
    items = {"a.txt": b"alpha", "dir/b.bin": bytes(range(256)) * 40, "c.pdf": b"%PDF"}
    return MemoryConnector(MemorySettings(auth=CONNECTOR_AUTH), items=items)  # type: ignore[arg-type]


@pytest.fixture
async def client(connector: MemoryConnector) -> AsyncIterator[httpx.AsyncClient]:
    """Signs every call with the connector's DSX-HMAC pair, as the core does."""
    app = create_connector_app(connector)
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://t", auth=core_signer()) as http:
        yield http


def scan_request(location: str, **extra: object) -> dict[str, object]:
    return {"location": location, "metainfo": location, **extra}


async def test_alive_and_ping_answer_spec_shapes(client: httpx.AsyncClient) -> None:
    alive, ping = (await client.get("/alive")).json(), (await client.get("/ping")).json()
    assert alive["status"] == "ok" and RFC3339_UTC.match(alive["ts"])
    assert ping["status"] == "pong" and RFC3339_UTC.match(ping["ts"])


async def test_health_is_served_at_the_root_and_under_the_prefix(client: httpx.AsyncClient) -> None:
    for base in ("", PREFIX):
        assert (await client.get(f"{base}/healthz")).json()["status"] == "ok"
        ready = await client.get(f"{base}/readyz")
        assert ready.status_code == 503  # not registered: the runtime never started
        assert ready.json()["failing"] == ["dsx-connect"]


async def test_identity_and_version(client: httpx.AsyncClient, connector: MemoryConnector) -> None:
    me = (await client.get(f"{PREFIX}/")).json()
    assert me["name"] == "memory-connector" and me["uuid"] == connector.settings.uuid
    assert me["url"].endswith(PREFIX) and me["version"] == "9.9.9"
    assert (await client.get(f"{PREFIX}/version")).json()["version"] == "9.9.9"


async def test_a_failing_watcher_says_why_to_signed_callers_only(connector: MemoryConnector) -> None:
    app = create_connector_app(connector)
    app.state.runtime.watch_error = "Permission denied: '/data/asset/private'"
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://t", auth=core_signer()) as signed:
        assert (await signed.get(f"{PREFIX}/")).json()["monitor"]["error"].startswith("Permission denied")
    async with httpx.AsyncClient(transport=transport, base_url="http://t") as anonymous:
        assert "error" not in (await anonymous.get(f"{PREFIX}/")).json()["monitor"]  # it names paths


async def test_read_file_answers_the_bytes(client: httpx.AsyncClient, connector: MemoryConnector) -> None:
    response = await client.post(f"{PREFIX}/read_file", json=scan_request("dir/b.bin"))
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/octet-stream"
    assert response.content == connector.items["dir/b.bin"]
    connector.chunked.add("dir/b.bin")  # streamed from an async iterator
    streamed = await client.post(f"{PREFIX}/read_file", json=scan_request("dir/b.bin"))
    assert streamed.content == connector.items["dir/b.bin"]


async def test_read_file_errors_are_json_with_the_right_code(client: httpx.AsyncClient) -> None:
    missing = await client.post(f"{PREFIX}/read_file", json=scan_request("nope.txt"))
    assert missing.status_code == 404
    assert missing.headers["content-type"] == "application/json"
    assert missing.json()["status"] == "error" and missing.json()["error"] == "not_found"
    escape = await client.post(f"{PREFIX}/read_file", json=scan_request("../etc/passwd"))
    assert escape.status_code == 403 and escape.json()["error"] == "outside_asset"
    malformed = await client.post(f"{PREFIX}/read_file", json={"metainfo": "no location"})
    assert malformed.status_code == 422 and "location" in malformed.json()["message"]
    not_json = await client.post(
        f"{PREFIX}/read_file", content=b"{oops", headers={"content-type": "application/json"}
    )
    assert not_json.status_code == 422 and "not JSON" in not_json.json()["message"]


async def test_read_file_accepts_json_without_a_content_type(client: httpx.AsyncClient) -> None:
    response = await client.post(f"{PREFIX}/read_file", content=b'{"location": "a.txt", "metainfo": "a"}')
    assert response.content == b"alpha"


async def test_read_files_answers_one_frame_per_item_in_order(
    client: httpx.AsyncClient, connector: MemoryConnector
) -> None:
    connector.items["big.bin"] = b"x" * (MAX_ITEM_BYTES + 1)
    connector.chunked.add("dir/b.bin")  # a streamed item is gathered for its frame
    wanted = ["a.txt", "nope.txt", "dir/b.bin", "../etc/passwd", "big.bin", "a.txt"]
    answer = await client.post(f"{PREFIX}/read_files", json={"items": [scan_request(w) for w in wanted]})
    assert answer.status_code == 200 and answer.headers["content-type"] == MEDIA_TYPE
    frames = [(status, bytes(payload)) for status, payload in iter_frames(answer.content, len(wanted))]
    assert [status for status, _ in frames] == [200, 404, 200, 403, 413, 200]
    assert frames[0][1] == frames[5][1] == b"alpha"
    assert frames[2][1] == connector.items["dir/b.bin"]
    assert b'"not_found"' in frames[1][1] and b'"outside_asset"' in frames[3][1]
    assert b"read_file" in frames[4][1]  # too large for a group: read it on its own


async def test_read_files_refuses_malformed_or_oversized_requests(client: httpx.AsyncClient) -> None:
    for body in ({"items": []}, {"items": [{"metainfo": "no location"}]}, {"items": "a.txt"}, [1]):
        refused = await client.post(f"{PREFIX}/read_files", json=body)
        assert refused.status_code == 422 and refused.json()["error"] == "invalid_request", body
    too_many = {"items": [scan_request("a.txt")] * (MAX_ITEMS + 1)}
    refused = await client.post(f"{PREFIX}/read_files", json=too_many)
    assert refused.status_code == 422 and "items" in refused.json()["message"]


async def test_item_action_applies_the_configured_or_requested_action(
    client: httpx.AsyncClient, connector: MemoryConnector
) -> None:
    nothing = await client.put(f"{PREFIX}/item_action", json=scan_request("a.txt"))
    assert nothing.json()["status"] == "nothing" and nothing.json()["item_action"] == "nothing"
    assert "a.txt" in connector.items

    move = {"type": "move"}
    moved = await client.put(f"{PREFIX}/item_action", json=scan_request("a.txt", requested_action=move))
    assert moved.status_code == 200 and moved.json()["status"] == "success"
    assert moved.json()["item_action"] == "move"
    assert "dsxconnect-quarantine/a.txt" in connector.items and "a.txt" not in connector.items

    connector.configure(connector.settings.updated({"item_action": "delete"}))
    deleted = await client.put(f"{PREFIX}/item_action", json=scan_request("c.pdf"))
    assert deleted.json()["item_action"] == "delete" and "c.pdf" not in connector.items


async def test_item_action_failures_say_so_in_status_and_code(client: httpx.AsyncClient) -> None:
    missing = await client.put(
        f"{PREFIX}/item_action", json=scan_request("gone", requested_action={"type": "delete"})
    )
    assert missing.status_code == 404
    assert missing.json() | {"message": ""} == missing.json() | {
        "status": "error", "item_action": "delete", "location": "gone", "message": ""
    }  # fmt: skip
    escape = await client.put(
        f"{PREFIX}/item_action", json=scan_request("../x", requested_action={"type": "delete"})
    )
    assert escape.status_code == 403 and escape.json()["status"] == "error"


async def test_unsupported_actions_are_refused(client: httpx.AsyncClient, connector: MemoryConnector) -> None:
    type(connector.settings).supported_actions = frozenset({"nothing", "delete"})  # type: ignore[assignment]
    try:
        tag = await client.put(
            f"{PREFIX}/item_action", json=scan_request("a.txt", requested_action={"type": "tag"})
        )
    finally:
        del type(connector.settings).supported_actions
    assert tag.status_code == 400
    assert tag.json()["status"] == "error" and tag.json()["item_action"] == "tag"
    assert "not supported" in tag.json()["message"] and "a.txt" in connector.items


async def test_config_is_shown_redacted_and_updated_with_validation(
    client: httpx.AsyncClient, connector: MemoryConnector
) -> None:
    from pydantic import SecretStr

    connector.settings.enrollment_token = SecretStr("do-not-show")
    shown = await client.get(f"{PREFIX}/config")
    assert shown.status_code == 200 and "do-not-show" not in shown.text
    assert shown.json()["enrollment_token"] == "***"

    for bad in ({"item_action": "shred"}, {"filter": "-"}, {"uuid": "other"}, {}):
        refused = await client.put(f"{PREFIX}/config", json=bad)
        assert refused.status_code == 422, bad
        assert refused.json()["status"] == "error"
    assert connector.settings.item_action == "nothing"

    ok = await client.put(f"{PREFIX}/config", json={"filter": "*.pdf", "item_action": "delete"})
    assert ok.status_code == 200 and ok.json()["config"]["filter"] == "*.pdf"
    assert connector.settings.item_action == "delete" and "do-not-show" not in ok.text
    assert [item.location async for item in connector.enumerate()] == ["c.pdf"]


async def test_estimate_and_repo_check_default_to_enumeration(client: httpx.AsyncClient) -> None:
    assert (await client.get(f"{PREFIX}/estimate")).json() == {
        "count": 3,
        "confidence": "exact",
        "bytes": 10249,
    }
    check = (await client.get(f"{PREFIX}/repo_check", params={"preview": 2})).json()
    assert check["status"] == "success" and check["preview"] == ["a.txt", "c.pdf"]


async def test_webhook_is_not_supported_by_default(client: httpx.AsyncClient) -> None:
    response = await client.post(f"{PREFIX}/webhook/event", json={"Records": []})
    assert response.status_code == 404 and "not supported" in response.json()["message"]


async def test_full_scan_refuses_a_malformed_job_id(client: httpx.AsyncClient) -> None:
    response = await client.post(f"{PREFIX}/full_scan", params={"job_id": "../../x"})
    assert response.status_code == 422


async def test_request_id_is_echoed(client: httpx.AsyncClient) -> None:
    response = await client.get("/alive", headers={"X-Request-Id": "abc-123"})
    assert response.headers["x-request-id"] == "abc-123"
    assert len((await client.get("/alive")).headers["x-request-id"]) == 32


async def test_the_read_file_hot_path_echoes_the_request_id_and_bounds_a_chunked_body(
    client: httpx.AsyncClient, connector: MemoryConnector
) -> None:
    """read_file is served around the middleware stack (HotPathDispatch): it keeps both duties."""
    answer = await client.post(
        f"{PREFIX}/read_file", json=scan_request("a.txt"), headers={"X-Request-Id": "r-1"}
    )
    assert answer.status_code == 200 and answer.headers["x-request-id"] == "r-1"
    missing = await client.post(f"{PREFIX}/read_file", json=scan_request("nope.txt"))
    assert missing.status_code == 404 and len(missing.headers["x-request-id"]) == 32

    async def endless() -> AsyncIterator[bytes]:  # no Content-Length: the limit applies as it arrives
        for _ in range(connector.settings.max_request_bytes // 65536 + 2):
            yield b" " * 65536

    too_big = await client.post(f"{PREFIX}/read_file", content=endless())
    assert too_big.status_code == 413 and "limit" in too_big.json()["message"]


async def test_the_verifier_seam_guards_core_facing_routes(connector: MemoryConnector) -> None:
    async def refuse(request: Request) -> None:
        raise HTTPException(401, "unsigned")

    app = create_connector_app(connector, verifier=refuse)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as http:
        assert (await http.post(f"{PREFIX}/read_file", json=scan_request("a.txt"))).status_code == 401
        items = {"items": [scan_request("a.txt")]}
        assert (await http.post(f"{PREFIX}/read_files", json=items)).status_code == 401
        assert (await http.get(f"{PREFIX}/config")).status_code == 401
        assert (await http.get(f"{PREFIX}/healthz")).status_code == 200
        assert (await http.get(f"{PREFIX}/version")).status_code == 200


async def test_reads_answer_the_item_version_and_actions_are_guarded_by_it(
    client: httpx.AsyncClient, connector: MemoryConnector
) -> None:
    read = await client.post(f"{PREFIX}/read_file", json=scan_request("a.txt"))
    version = read.headers["X-Item-Version"]
    batch = await client.post(
        f"{PREFIX}/read_files", json={"items": [{"location": "c.pdf"}, {"location": "no"}]}
    )
    assert batch.headers["X-Item-Versions"].startswith('["') and batch.headers["X-Item-Versions"].endswith(
        ",null]"
    )
    connector.items["a.txt"] = b"replaced"
    stale = await client.put(
        f"{PREFIX}/item_action",
        json=scan_request("a.txt", item_version=version, requested_action={"type": "delete"}),
    )
    assert stale.status_code == 412 and stale.json()["error"] == "item_changed"
    assert connector.items["a.txt"] == b"replaced"
    gone = await client.put(
        f"{PREFIX}/item_action",
        json=scan_request("gone.txt", item_version=version, requested_action={"type": "delete"}),
    )
    assert gone.status_code == 404 and gone.json()["error"] == "not_found"
    unguarded = await client.put(
        f"{PREFIX}/item_action", json=scan_request("a.txt", requested_action={"type": "delete"})
    )
    assert unguarded.status_code == 200 and "a.txt" not in connector.items
