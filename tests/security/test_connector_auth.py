"""A connector as an attacker meets it: only the core's DSX-HMAC opens read_file, item_action, full_scan,
estimate, repo_check and config; forged, stale and replayed calls get 401 and touch nothing; every
connector refuses locations outside its asset; bodies are capped."""

from __future__ import annotations

import json
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import httpx
import pytest

from connectors.filesystem.connector import FilesystemConnector
from connectors.filesystem.settings import FilesystemSettings
from shared.connector import Connector, create_connector_app, security
from shared.connector.security import PREVIOUS_KEY_GRACE_S, ConnectorCredentials, CoreAuth
from shared.hmac_auth import DsxHmacAuth, Signer
from tests.support.auth import CONNECTOR_AUTH, CONNECTOR_KEY_ID, CONNECTOR_SECRET, core_signer

pytestmark = [pytest.mark.unit, pytest.mark.anyio]

PREFIX = "/filesystem-connector"
SIGNER = Signer(CONNECTOR_KEY_ID, CONNECTOR_SECRET)


@pytest.fixture
def asset(tmp_path: Path) -> Path:
    root = tmp_path / "asset"
    (root / "docs").mkdir(parents=True)
    (root / "docs" / "a.txt").write_bytes(b"alpha")
    (tmp_path / "outside.txt").write_bytes(b"secret outside the asset")
    (root / "escape").symlink_to(tmp_path / "outside.txt")
    return root


@pytest.fixture
def connector(asset: Path) -> FilesystemConnector:
    settings = FilesystemSettings(asset=str(asset), auth=CONNECTOR_AUTH, max_request_bytes=64 * 1024)  # type: ignore[arg-type]
    return FilesystemConnector(settings)


@pytest.fixture
async def app_client(connector: FilesystemConnector) -> AsyncIterator[httpx.AsyncClient]:
    app = create_connector_app(connector)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as http:
        yield http


def body(location: str, **extra: Any) -> bytes:
    return json.dumps({"location": location, "metainfo": location, **extra}).encode()


async def send(
    http: httpx.AsyncClient, method: str, path_q: str, content: bytes, authorization: str | None
) -> httpx.Response:
    headers = {"content-type": "application/json"} | (
        {"authorization": authorization} if authorization else {}
    )
    return await http.request(method, path_q, content=content, headers=headers)


CORE_CALLS = [
    ("POST", f"{PREFIX}/read_file", body("docs/a.txt")),
    ("PUT", f"{PREFIX}/item_action", body("docs/a.txt", requested_action={"type": "delete"})),
    ("POST", f"{PREFIX}/full_scan?job_id=job-1", b""),
    ("GET", f"{PREFIX}/estimate", b""),
    ("GET", f"{PREFIX}/repo_check?preview=2", b""),
    ("GET", f"{PREFIX}/config", b""),
    ("PUT", f"{PREFIX}/config", b'{"item_action": "delete"}'),
]


@pytest.mark.parametrize(
    "forgery",
    ["missing", "bad_signature", "tampered_body", "tampered_query", "wrong_key_id", "stale", "other_secret"],
)
@pytest.mark.parametrize(
    ("method", "path_q", "content"), CORE_CALLS, ids=[f"{m} {p}" for m, p, _ in CORE_CALLS]
)
async def test_forged_core_calls_are_refused_and_change_nothing(
    app_client: httpx.AsyncClient, connector: FilesystemConnector, asset: Path,
    forgery: str, method: str, path_q: str, content: bytes,
) -> None:  # fmt: skip
    sign_path = path_q + ("&x=1" if "?" in path_q else "?x=1") if forgery == "tampered_query" else path_q
    sign_body = content + b" " if forgery == "tampered_body" else content
    ts = int(time.time()) - 90 if forgery == "stale" else None
    signer = Signer(CONNECTOR_KEY_ID, "not the secret") if forgery == "other_secret" else SIGNER
    authorization = (
        None if forgery == "missing" else signer.authorization(method, sign_path, sign_body, ts=ts)
    )
    if forgery == "bad_signature" and authorization:
        authorization = authorization.rsplit("sig=", 1)[0] + "sig=" + "A" * 43 + "="
    if forgery == "wrong_key_id" and authorization:
        authorization = authorization.replace(CONNECTOR_KEY_ID, "dsxk-somebody-else")
    answer = await send(app_client, method, path_q, content, authorization)
    assert answer.status_code == 401, answer.text
    assert answer.content != b"alpha"
    assert (asset / "docs" / "a.txt").read_bytes() == b"alpha"
    assert connector.settings.item_action.value == "nothing"
    assert not app_client._transport.app.state.runtime.scans  # type: ignore[attr-defined]


async def test_a_replayed_core_call_is_refused(app_client: httpx.AsyncClient, asset: Path) -> None:
    content = body("docs/a.txt", requested_action={"type": "delete"})
    authorization = SIGNER.authorization("PUT", f"{PREFIX}/item_action", content)
    (asset / "docs" / "b.txt").write_bytes(b"b")
    first = await send(app_client, "PUT", f"{PREFIX}/item_action", content, authorization)
    assert first.status_code == 200 and not (asset / "docs" / "a.txt").exists()
    (asset / "docs" / "a.txt").write_bytes(b"alpha again")
    replay = await send(app_client, "PUT", f"{PREFIX}/item_action", content, authorization)
    assert replay.status_code == 401
    assert (asset / "docs" / "a.txt").read_bytes() == b"alpha again"


async def test_a_signed_read_file_is_served(app_client: httpx.AsyncClient) -> None:
    content = body("docs/a.txt")
    answer = await send(
        app_client,
        "POST",
        f"{PREFIX}/read_file",
        content,
        SIGNER.authorization("POST", f"{PREFIX}/read_file", content),
    )
    assert answer.status_code == 200 and answer.content == b"alpha"


async def test_health_identity_and_webhooks_need_no_signature(app_client: httpx.AsyncClient) -> None:
    for path in ("/alive", "/healthz", f"{PREFIX}/healthz", f"{PREFIX}/", f"{PREFIX}/version"):
        assert (await app_client.get(path)).status_code == 200, path
    webhook = await app_client.post(f"{PREFIX}/webhook/event", json={})
    assert webhook.status_code == 404  # public, and the filesystem connector has none


async def test_an_oversized_body_is_413(app_client: httpx.AsyncClient) -> None:
    content = body("docs/a.txt", padding="x" * 100_000)
    answer = await send(
        app_client,
        "POST",
        f"{PREFIX}/read_file",
        content,
        SIGNER.authorization("POST", f"{PREFIX}/read_file", content),
    )
    assert answer.status_code == 413 and "limit" in answer.json()["message"]


async def test_a_connector_with_no_key_refuses_everything(asset: Path) -> None:
    connector = FilesystemConnector(FilesystemSettings(asset=str(asset)))  # enrolled by nobody yet
    app = create_connector_app(connector)
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://t", auth=core_signer()
    ) as http:
        answer = await http.post(f"{PREFIX}/read_file", json={"location": "docs/a.txt", "metainfo": "a"})
    assert answer.status_code == 401 and b"alpha" not in answer.content


# ---- the pair follows the registration answers ----------------------------------------------------


def registration_answer(
    key_id: str, secret: str, status: int = 200
) -> Callable[[httpx.Request], httpx.Response]:
    def handler(request: httpx.Request) -> httpx.Response:
        if request.url.path.endswith("/connectors/register"):
            assert request.headers["x-enrollment-token"] == "enroll-token-0123456789"
            return httpx.Response(
                status, json={"status": "success", "hmac_key_id": key_id, "hmac_secret": secret}
            )
        return httpx.Response(
            202, json={"status": "success", "authorization": request.headers.get("authorization")}
        )

    return handler


async def test_the_connector_takes_its_pair_from_the_registration_answer_and_signs_with_it() -> None:
    credentials = ConnectorCredentials()
    auth = CoreAuth(credentials, "enroll-token-0123456789")
    transport = httpx.MockTransport(registration_answer("dsxk-new", "new-secret-0123456789"))
    async with httpx.AsyncClient(transport=transport, auth=auth, base_url="http://core") as http:
        await http.post("/dsx-connect/api/v1/connectors/register", json={})
        signed = (await http.post("/dsx-connect/api/v1/scan/request", json={"x": 1})).json()["authorization"]
    assert credentials.key_id == "dsxk-new" and "key_id=dsxk-new" in signed


async def test_a_connector_holding_a_pair_signs_its_heartbeat_and_falls_back_to_its_token_on_401() -> None:
    seen: list[str | None] = []

    def core(request: httpx.Request) -> httpx.Response:
        seen.append(request.headers.get("authorization"))
        assert request.headers["x-enrollment-token"] == "enroll-token-0123456789"
        if request.headers.get("authorization"):  # the core forgot this pair (an operator reset it)
            return httpx.Response(401, json={"status": "error"})
        return httpx.Response(
            201, json={"hmac_key_id": "dsxk-fresh", "hmac_secret": "fresh-secret-0123456789"}
        )

    credentials = ConnectorCredentials("dsxk-old", "old-secret-0123456789")
    auth = CoreAuth(credentials, "enroll-token-0123456789")
    async with httpx.AsyncClient(
        transport=httpx.MockTransport(core), auth=auth, base_url="http://core"
    ) as http:
        answer = await http.post("/dsx-connect/api/v1/connectors/register", json={})
    assert answer.status_code == 201
    assert seen[0] is not None and "key_id=dsxk-old" in seen[0] and seen[1] is None
    assert credentials.key_id == "dsxk-fresh"
    # the pair the core refused (reset: maybe stolen) no longer opens this connector, not even for a while
    assert credentials.secret_for("dsxk-old") is None


async def test_after_a_rotation_the_previous_pair_is_still_accepted_for_a_while() -> None:
    credentials = ConnectorCredentials("dsxk-old", "old-secret-0123456789")
    assert credentials.update("dsxk-new", "new-secret-0123456789")
    assert credentials.secret_for("dsxk-old") == "old-secret-0123456789"
    assert credentials.secret_for("dsxk-new") == "new-secret-0123456789"
    assert credentials.update("dsxk-newer", "newer-secret-0123456789")
    assert credentials.secret_for("dsxk-old") is None  # only one previous pair is kept


@pytest.mark.parametrize(
    ("stated", "kept_s"), [(30, 30), (0, 0), (None, PREVIOUS_KEY_GRACE_S), (86_400, PREVIOUS_KEY_GRACE_S)]
)
async def test_the_previous_pair_is_kept_no_longer_than_the_core_honours_it(
    monkeypatch: pytest.MonkeyPatch, stated: int | None, kept_s: float
) -> None:
    """The core says how long it still honours the replaced pair (its KEY_ROTATION_GRACE_S left);
    an older core that does not say gets the connector's own default."""

    def core(request: httpx.Request) -> httpx.Response:
        body: dict[str, object] = {"hmac_key_id": "dsxk-new", "hmac_secret": "new-secret-0123456789"}
        if stated is not None:
            body["hmac_previous_valid_s"] = stated
        return httpx.Response(200, json=body)

    credentials = ConnectorCredentials("dsxk-old", "old-secret-0123456789")
    auth = CoreAuth(credentials, "enroll-token-0123456789")
    async with httpx.AsyncClient(
        transport=httpx.MockTransport(core), auth=auth, base_url="http://core"
    ) as http:
        await http.post("/dsx-connect/api/v1/connectors/register", json={})
    assert credentials.key_id == "dsxk-new"
    start = time.monotonic()
    if kept_s:
        monkeypatch.setattr(security.time, "monotonic", lambda: start + kept_s - 1)
        assert credentials.secret_for("dsxk-old") == "old-secret-0123456789"
    monkeypatch.setattr(security.time, "monotonic", lambda: start + kept_s + 1)
    assert credentials.secret_for("dsxk-old") is None


async def test_a_revocation_answer_drops_the_pair() -> None:
    credentials = ConnectorCredentials("dsxk-old", "old-secret-0123456789")
    auth = CoreAuth(credentials, "enroll-token-0123456789")
    transport = httpx.MockTransport(registration_answer("", "", status=403))
    async with httpx.AsyncClient(transport=transport, auth=auth, base_url="http://core") as http:
        await http.post("/dsx-connect/api/v1/connectors/register", json={})
    assert credentials.key_id is None and credentials.signer() is None


async def test_a_call_signed_with_an_unknown_key_makes_the_connector_re_register(
    connector: FilesystemConnector,
) -> None:
    app = create_connector_app(connector)
    runtime = app.state.runtime
    runtime._last_nudge = 0.0
    stranger = DsxHmacAuth(Signer("dsxk-rotated-meanwhile", "whatever-secret"))
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://t", auth=stranger
    ) as http:
        assert (await http.get(f"{PREFIX}/estimate")).status_code == 401
    assert runtime._wake.is_set()


# ---- every connector keeps to its asset -----------------------------------------------------------

ESCAPES = [
    "../outside.txt", "docs/../../outside.txt", "/etc/passwd", "..", "./../x", "docs/..%2F..%2Fx/../../..",
    "\\\\server\\share\\x", "C:\\Windows\\win.ini", "docs/\x00/a.txt", "..\\..\\x", "",
]  # fmt: skip


def _cloud_connectors() -> list[tuple[str, Callable[[], Connector]]]:
    from connectors.aws_s3.connector import AwsS3Connector
    from connectors.aws_s3.settings import AwsS3Settings
    from connectors.azure_blob_storage.connector import AzureBlobStorageConnector
    from connectors.azure_blob_storage.settings import AzureBlobStorageSettings
    from connectors.google_cloud_storage.connector import GoogleCloudStorageConnector
    from connectors.google_cloud_storage.settings import GoogleCloudStorageSettings

    azurite = (
        "DefaultEndpointsProtocol=http;AccountName=devstoreaccount1;AccountKey=ZGV2;"
        "BlobEndpoint=http://127.0.0.1:9/devstoreaccount1;"
    )
    return [
        ("aws_s3", lambda: AwsS3Connector(AwsS3Settings(
            asset="bucket/in", aws_endpoint_url="http://127.0.0.1:9", aws_region="us-east-1",
            aws_access_key_id="x", aws_secret_access_key="y", auth=CONNECTOR_AUTH))),  # type: ignore[arg-type]
        ("azure_blob_storage", lambda: AzureBlobStorageConnector(AzureBlobStorageSettings(
            asset="container/in", azure_connection_string=azurite, auth=CONNECTOR_AUTH))),  # type: ignore[arg-type]
        ("google_cloud_storage", lambda: GoogleCloudStorageConnector(GoogleCloudStorageSettings(
            asset="bucket/in", gcs_endpoint_url="http://127.0.0.1:9", gcs_anonymous=True, auth=CONNECTOR_AUTH))),  # type: ignore[arg-type]
    ]  # fmt: skip


async def test_the_filesystem_connector_refuses_every_escape(
    app_client: httpx.AsyncClient, asset: Path
) -> None:
    for location in [*ESCAPES, "escape", str(asset.parent / "outside.txt")]:
        for method, path, extra in (
            ("POST", "read_file", {}),
            ("PUT", "item_action", {"requested_action": {"type": "delete"}}),
        ):
            content = json.dumps({"location": location, "metainfo": "x", **extra}).encode()
            answer = await send(app_client, method, f"{PREFIX}/{path}", content,
                                SIGNER.authorization(method, f"{PREFIX}/{path}", content))  # fmt: skip
            assert answer.status_code in (400, 403, 422), (location, answer.status_code)
            assert b"secret outside" not in answer.content
    assert (asset.parent / "outside.txt").read_bytes() == b"secret outside the asset"


@pytest.mark.parametrize("name", ["aws_s3", "azure_blob_storage", "google_cloud_storage"])
async def test_each_cloud_connector_refuses_every_escape_before_any_storage_call(name: str) -> None:
    make = dict(_cloud_connectors())[name]
    connector = make()
    prefix = connector.settings.route_prefix
    app = create_connector_app(connector)
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://t", auth=core_signer()
    ) as http:
        for location in [*ESCAPES, "../other-prefix/x", "in/../../other-bucket/x"]:
            read = await http.post(f"{prefix}/read_file", json={"location": location, "metainfo": "x"})
            act = await http.put(
                f"{prefix}/item_action",
                json={"location": location, "metainfo": "x", "requested_action": {"type": "delete"}},
            )
            # 400/403/422: refused before the storage (at 127.0.0.1:9, which answers nothing) is tried
            assert read.status_code in (400, 403, 422), (name, location, read.status_code, read.text)
            assert act.status_code in (400, 403, 422), (name, location, act.status_code, act.text)
    await connector.aclose()


async def test_the_key_file_keeps_the_pair_across_restarts_and_a_revocation_removes_it(
    tmp_path: Path,
) -> None:
    key_file = tmp_path / "connector.key"
    first = ConnectorCredentials(key_file=str(key_file))
    assert first.key_id is None and not key_file.exists()
    first.update("dsxk-kept", "kept-secret-0123456789")
    assert key_file.stat().st_mode & 0o777 == 0o600
    restarted = ConnectorCredentials(key_file=str(key_file))  # a new process, same file
    assert restarted.key_id == "dsxk-kept" and restarted.secret_for("dsxk-kept") == "kept-secret-0123456789"
    restarted.clear()
    assert not key_file.exists()
    key_file.write_text("not json")
    assert (
        ConnectorCredentials("dsxk-seed", "seed-secret-0123456789", key_file=str(key_file)).key_id
        == "dsxk-seed"
    )
