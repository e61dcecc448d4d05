"""The filesystem connector's routes, in process: read_file, item_action, config."""

from __future__ import annotations

import json
import os
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import httpx
import pytest

from connectors.filesystem.connector import FilesystemConnector
from shared.connector import create_connector_app
from tests.support.auth import CONNECTOR_AUTH, core_signer

pytestmark = [pytest.mark.unit, pytest.mark.anyio]

PREFIX = "/filesystem-connector"


@pytest.fixture
async def client(make_connector: Callable[..., FilesystemConnector]) -> AsyncIterator[httpx.AsyncClient]:
    app = create_connector_app(make_connector(enrollment_token="enroll-secret", auth=CONNECTOR_AUTH))
    transport = httpx.ASGITransport(app=app)  # signed as the core signs (DSX-HMAC)
    async with httpx.AsyncClient(transport=transport, base_url="http://t", auth=core_signer()) as http:
        yield http


def body(location: str, **extra: object) -> dict[str, object]:
    return {"location": location, "metainfo": location, **extra}


async def test_read_file_answers_exact_bytes(client: httpx.AsyncClient, asset: Path) -> None:
    big = os.urandom(5 * 1024 * 1024 + 17)
    (asset / "docs/big.bin").write_bytes(big)
    small = await client.post(f"{PREFIX}/read_file", json=body("docs/report.pdf"))
    assert small.status_code == 200 and small.content == b"%PDF-1.4 report"
    assert small.headers["content-type"] == "application/octet-stream"
    large = await client.post(f"{PREFIX}/read_file", json=body("docs/big.bin"))
    assert large.status_code == 200 and large.content == big
    # its length is announced: the scanner takes a large body as it arrives only when it knows it
    assert large.headers["content-length"] == str(len(big))
    empty = asset / "empty.bin"
    empty.write_bytes(b"")
    assert (await client.post(f"{PREFIX}/read_file", json=body("empty.bin"))).content == b""


async def test_read_file_refuses_missing_and_escaping_locations(
    client: httpx.AsyncClient, asset: Path, tmp_path: Path
) -> None:
    (tmp_path / "secret.txt").write_text("secret")
    (asset / "escape").symlink_to(tmp_path / "secret.txt")
    missing = await client.post(f"{PREFIX}/read_file", json=body("docs/missing.pdf"))
    assert missing.status_code == 404 and missing.json()["status"] == "error"
    for bad in ("../secret.txt", str(tmp_path / "secret.txt"), "escape", "docs/../../secret.txt"):
        refused = await client.post(f"{PREFIX}/read_file", json=body(bad))
        assert refused.status_code == 403, bad
        assert (
            refused.headers["content-type"] == "application/json"
            and "secret" not in refused.text.split(":")[-1]
        )


async def test_item_action_delete(client: httpx.AsyncClient, asset: Path) -> None:
    response = await client.put(
        f"{PREFIX}/item_action", json=body("docs/notes.txt", requested_action={"type": "delete"})
    )
    assert response.status_code == 200
    assert response.json()["status"] == "success" and response.json()["item_action"] == "delete"
    assert not (asset / "docs/notes.txt").exists()
    again = await client.put(
        f"{PREFIX}/item_action", json=body("docs/notes.txt", requested_action={"type": "delete"})
    )
    assert again.status_code == 404 and again.json()["status"] == "error"


async def test_item_action_move_uses_the_configured_quarantine(
    client: httpx.AsyncClient, asset: Path, tmp_path: Path
) -> None:
    quarantine = tmp_path / "q"
    update = {"item_action": "move", "item_action_move_metainfo": str(quarantine)}
    assert (await client.put(f"{PREFIX}/config", json=update)).status_code == 200
    response = await client.put(f"{PREFIX}/item_action", json=body("docs/deep/er/file.pdf"))
    assert response.status_code == 200 and response.json()["item_action"] == "move"
    assert (quarantine / "docs/deep/er/file.pdf").read_bytes() == b"%PDF deep"
    assert not (asset / "docs/deep/er/file.pdf").exists()


async def test_item_action_tag_is_not_supported(client: httpx.AsyncClient, asset: Path) -> None:
    response = await client.put(
        f"{PREFIX}/item_action", json=body("top.txt", requested_action={"type": "tag"})
    )
    assert response.status_code == 400
    assert response.json()["status"] == "error" and response.json()["item_action"] == "tag"
    assert (asset / "top.txt").exists()


async def test_config_redacts_secrets_and_validates_updates(
    client: httpx.AsyncClient, tmp_path: Path
) -> None:
    shown = await client.get(f"{PREFIX}/config")
    assert shown.status_code == 200 and "enroll-secret" not in shown.text
    assert shown.json()["enrollment_token"] == "***" and shown.json()["name"] == "filesystem-connector"
    for bad, field in (({"asset": "/nonexistent"}, "asset"), ({"item_action": "tag"}, "item_action"),
                       ({"filter": "!"}, "filter"), ({"item_action_move_metainfo": ".."}, "item_action_move_metainfo"),
                       ({"name": "x"}, "name")):  # fmt: skip
        refused = await client.put(f"{PREFIX}/config", json=bad)
        assert refused.status_code == 422 and field in refused.json()["message"], bad
    other = tmp_path / "other-asset"
    other.mkdir()
    (other / "only.txt").write_text("x")
    ok = await client.put(f"{PREFIX}/config", json={"asset": str(other)})
    assert ok.status_code == 200 and ok.json()["config"]["asset"] == str(other)
    assert (await client.post(f"{PREFIX}/read_file", json=body("only.txt"))).content == b"x"
    assert (await client.get(f"{PREFIX}/estimate")).json()["count"] == 1


async def test_webhook_events_are_not_supported(client: httpx.AsyncClient) -> None:
    response = await client.post(f"{PREFIX}/webhook/event", json={})
    assert response.status_code == 404 and response.json()["status"] == "error"


async def test_repo_check_previews_sample_locations(client: httpx.AsyncClient) -> None:
    check = (await client.get(f"{PREFIX}/repo_check", params={"preview": 2})).json()
    assert check["status"] == "success" and len(check["preview"]) == 2


async def test_an_action_on_a_file_replaced_after_its_read_answers_412_and_touches_nothing(
    client: httpx.AsyncClient, asset: Path
) -> None:
    target = asset / "docs" / "bad.com"
    target.write_bytes(b"scanned bytes")
    read = await client.post(f"{PREFIX}/read_file", json=body("docs/bad.com"))
    scanned = read.headers["X-Item-Version"]
    replacement = asset / "docs" / ".bad.com.new"
    replacement.write_bytes(b"new bytes, not scanned")
    os.replace(replacement, target)  # a new inode under the same name, as editors save
    for kind in ("delete", "move"):
        answer = await client.put(
            f"{PREFIX}/item_action",
            json=body("docs/bad.com", item_version=scanned, requested_action={"type": kind}),
        )
        assert answer.status_code == 412 and answer.json()["error"] == "item_changed", answer.text
    assert target.read_bytes() == b"new bytes, not scanned"
    assert not (asset / "quarantine").exists() or not any((asset / "quarantine").rglob("bad.com*"))

    batch = await client.post(
        f"{PREFIX}/read_files", json={"items": [{"location": "docs/bad.com"}, {"location": "docs/nope"}]}
    )
    current, missing = json.loads(batch.headers["X-Item-Versions"])
    assert current != scanned and missing is None
    done = await client.put(
        f"{PREFIX}/item_action",
        json=body("docs/bad.com", item_version=current, requested_action={"type": "delete"}),
    )
    assert done.status_code == 200 and not target.exists(), done.text
    gone = await client.put(
        f"{PREFIX}/item_action",
        json=body("docs/bad.com", item_version=current, requested_action={"type": "delete"}),
    )
    assert gone.status_code == 404 and gone.json()["error"] == "not_found"


async def test_a_file_rewritten_in_place_is_a_changed_item(client: httpx.AsyncClient, asset: Path) -> None:
    target = asset / "docs" / "edited.com"
    target.write_bytes(b"v1")
    scanned = (await client.post(f"{PREFIX}/read_file", json=body("docs/edited.com"))).headers[
        "X-Item-Version"
    ]
    target.write_bytes(b"v2 is longer")  # same inode, new size and mtime
    answer = await client.put(
        f"{PREFIX}/item_action",
        json=body("docs/edited.com", item_version=scanned, requested_action={"type": "delete"}),
    )
    assert answer.status_code == 412 and target.read_bytes() == b"v2 is longer"
