"""The Graph drive layer through the SharePoint connector, against the fake Graph: delta scans,
throttling, tokens, notifications, subscriptions, site resolution and ranged reads."""

from __future__ import annotations

import gc
import hashlib
import json
import os
import tracemalloc
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anyio
import httpx
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from connectors.graph.drive import MONITOR_CURSOR, SCAN_CURSOR, GraphDriveConnector
from shared.connector import WebhookReply, create_connector_app
from tests.connectors.sharepoint.conftest import Make
from tests.support.cloud_contract import Core
from tests.support.fake_graph import FakeGraph
from tests.support.graph_store import CLIENT_ID, CLIENT_STATE, GraphStore, drive_id, unique_drive
from tests.support.procs import PYTHON, ServiceProcess, base_env, free_port, wait_for
from tests.support.threaded_server import serving

pytestmark = [pytest.mark.integration, pytest.mark.anyio]


async def scan(connector: GraphDriveConnector[Any]) -> list[str]:
    """One full scan as the framework runs it: every scan item, then ``scan_completed``."""
    locations = [item.location async for item in connector.scan_items()]
    await connector.scan_completed()
    return locations


async def peak_while_scanning(connector: GraphDriveConnector[Any]) -> tuple[int, int]:
    """(items, peak bytes allocated) of one scan, the client already warmed up."""
    await connector.check()
    gc.collect()
    tracemalloc.start()
    try:
        count = 0
        async for _ in connector.scan_items():
            count += 1
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    await connector.scan_completed()
    return count, peak


@pytest.fixture
def default_gc_thresholds() -> Iterator[None]:
    """The collector's default thresholds for the measurement: a connector app started earlier in
    this process (``tune_gc``) raised the first to 50,000, after which the garbage of a scan (httpx's
    responses in reference cycles) piled up to that bound, the same for any store size but larger
    than the 1,000-item baseline this test compares with."""
    saved = gc.get_threshold()
    gc.set_threshold(700, 10, 10)
    try:
        yield
    finally:
        gc.set_threshold(*saved)


@pytest.mark.usefixtures("default_gc_thresholds")
async def test_a_5000_item_drive_is_scanned_in_constant_memory_then_only_its_delta(
    store: GraphStore, fake_graph: FakeGraph, make: Make
) -> None:
    small, bucket = unique_drive(store), unique_drive(store)
    fake_graph.call("POST", f"/_fake/drives/{drive_id(small)}/bulk", json={"folder": "big", "count": 1000})
    fake_graph.call("POST", f"/_fake/drives/{drive_id(bucket)}/bulk", json={"folder": "big", "count": 5000})
    assert (await peak_while_scanning(make(asset=f"{small}/big", graph_page_size=200)))[0] == 1000
    _, baseline = await peak_while_scanning(
        make(asset=f"{small}/big", graph_page_size=200, graph_incremental_scan=False)
    )
    connector = make(asset=f"{bucket}/big", graph_page_size=200)
    count, peak = await peak_while_scanning(connector)
    assert count == 5000
    # five times the items, about the same memory: a page at a time, nothing kept per item (keeping
    # 4,000 more parsed items would add over 2 MB; the slack is httpx's responses awaiting the GC)
    assert peak < baseline * 1.5 + 400_000, f"peak {peak} bytes for 5,000 items, {baseline} for 1,000"
    assert await connector.state.get(SCAN_CURSOR)

    fake_graph.call("POST", "/_fake/reset-stats")
    store.put(bucket, "big/new-1.txt", b"new")
    store.put(bucket, "big/f000007.txt", b"changed")
    store.put(bucket, "elsewhere/ignored.txt", b"outside the asset")
    assert sorted(await scan(connector)) == ["big/f000007.txt", "big/new-1.txt"]
    assert fake_graph.stats()["delta_items"] <= 4  # the changes, not the drive


async def test_an_expired_delta_token_restarts_the_enumeration(
    store: GraphStore, fake_graph: FakeGraph, make: Make
) -> None:
    bucket = unique_drive(store)
    for n in range(5):
        store.put(bucket, f"docs/{n}.txt", b"x")
    connector = make(asset=f"{bucket}/docs", graph_page_size=2)
    assert len(await scan(connector)) == 5
    store.put(bucket, "docs/late.txt", b"y")
    fake_graph.call("POST", f"/_fake/expire-delta/{drive_id(bucket)}")
    assert sorted(await scan(connector)) == sorted([f"docs/{n}.txt" for n in range(5)] + ["docs/late.txt"])
    assert await scan(connector) == []  # and the new cursor works
    connector.configure(connector.settings.updated({"filter": "0.txt,late.txt"}))
    assert sorted(await scan(connector)) == ["docs/0.txt", "docs/late.txt"]  # a new filter: a whole scan


async def test_a_throttled_run_waits_as_told_and_completes(
    store: GraphStore, fake_graph: FakeGraph, make: Make
) -> None:
    bucket = unique_drive(store)
    for n in range(6):
        store.put(bucket, f"t/{n}.txt", b"x")
    connector = make(asset=f"{bucket}/t", graph_page_size=2, graph_retry_max_s=0.3)
    await connector.check()
    fake_graph.call("POST", "/_fake/throttle", json={"count": 3, "status": 429, "retry_after": "3600"})
    started = anyio.current_time()
    assert len([item async for item in connector.enumerate()]) == 6
    assert connector.client.throttled == 3 and fake_graph.stats()["throttled"] >= 3
    assert anyio.current_time() - started < 5  # Retry-After: 3600 capped by GRAPH_RETRY_MAX_S
    fake_graph.call("POST", "/_fake/throttle", json={"count": 2, "status": 503, "retry_after": "0"})
    assert (await connector.read("t/1.txt")).data == b"x"

    fake_graph.call("POST", "/_fake/throttle", json={"count": 50, "status": 429, "retry_after": "0"})
    with pytest.raises(Exception) as failed:
        await make(asset=f"{bucket}/t", graph_max_retries=2).check()
    assert "unavailable" in str(failed.value)  # gives up after the retries: retryable, not silent
    fake_graph.call("POST", "/_fake/throttle", json={"count": 0})


async def test_a_refused_token_is_renewed_once(store: GraphStore, fake_graph: FakeGraph, make: Make) -> None:
    bucket = unique_drive(store)
    store.put(bucket, "a.txt", b"a")
    connector = make(asset=bucket)
    assert (await connector.read("a.txt")).data == b"a"
    issued = fake_graph.stats()["tokens_issued"]
    fake_graph.call("POST", "/_fake/tokens", json={"revoke": True})
    assert (await connector.read("a.txt")).data == b"a"
    assert fake_graph.stats()["tokens_issued"] == issued + 1


async def test_large_files_are_read_in_ranges(store: GraphStore, make: Make) -> None:
    bucket = unique_drive(store)
    data = os.urandom(2 * 1024 * 1024 + 11)
    store.put(bucket, "big.bin", data)
    content = await make(asset=bucket, graph_read_chunk_bytes=256 * 1024).read("big.bin")
    assert content.chunks is not None and content.version
    parts = [part async for part in content.chunks]
    assert len(parts) == 9 and all(len(p) <= 256 * 1024 for p in parts)
    assert hashlib.sha256(b"".join(parts)).digest() == hashlib.sha256(data).digest()


async def test_a_forged_notification_is_refused_and_a_genuine_one_reads_the_delta(
    store: GraphStore, make: Make
) -> None:
    bucket = unique_drive(store)
    connector = make(asset=f"{bucket}/in")
    http = httpx.AsyncClient(
        transport=httpx.ASGITransport(app=create_connector_app(connector)), base_url=f"http://t/{store.name}/"
    )
    handshake = await http.post("webhook/event", params={"validationToken": "Validation: token 1"})
    assert handshake.status_code == 200 and handshake.text == "Validation: token 1"
    assert handshake.headers["content-type"].startswith("text/plain")
    assert await connector.changes() == []  # the monitor's starting point
    assert await connector.state.get(MONITOR_CURSOR)
    store.put(bucket, "in/dropped.exe", b"MZ")
    forged = {"value": [{"subscriptionId": "s", "clientState": "guess", "changeType": "updated"}]}
    refused = await http.post("webhook/event", json=forged)
    assert refused.status_code == 401 and "clientState" in refused.json()["message"]
    missing = await http.post("webhook/event", json={"value": [{"subscriptionId": "s"}]})
    assert missing.status_code == 401
    genuine = {"value": [{"subscriptionId": "s", "clientState": CLIENT_STATE, "changeType": "updated"}]}
    cursor = await connector.state.get(MONITOR_CURSOR)
    reply = await connector.webhook(genuine)
    assert isinstance(reply, WebhookReply) and [item.location for item in reply.items] == ["in/dropped.exe"]
    # the delta link moves only once the core has the items: a failed submission (answered 503)
    # leaves it, and Graph's redelivery reads the same change
    assert await connector.state.get(MONITOR_CURSOR) == cursor
    again = await connector.webhook(genuine)
    assert isinstance(again, WebhookReply) and [item.location for item in again.items] == ["in/dropped.exe"]
    assert again.after_submit is not None
    await again.after_submit()
    assert await connector.state.get(MONITOR_CURSOR) != cursor
    after = await connector.webhook(genuine)
    assert isinstance(after, WebhookReply) and after.items == []


async def test_polling_finds_changes_without_a_webhook(store: GraphStore, make: Make) -> None:
    bucket = unique_drive(store)
    connector = make(asset=f"{bucket}/in", graph_poll_interval_s=0.1)
    stop = anyio.Event()
    seen: list[str] = []
    with anyio.fail_after(20):
        async with anyio.create_task_group() as group:

            async def watch() -> None:
                async for batch in connector.watch(stop):
                    seen.extend(item.location for item in batch)
                    stop.set()

            group.start_soon(watch)
            while await connector.state.get(MONITOR_CURSOR) is None:  # noqa: ASYNC110
                await anyio.sleep(0.05)
            store.put(bucket, "in/polled.txt", b"p")
    assert seen == ["in/polled.txt"]


async def test_the_monitor_submits_what_changed_while_it_was_down(store: GraphStore, make: Make) -> None:
    bucket = unique_drive(store)
    before = make(asset=f"{bucket}/in")
    assert await before.changes() == []  # a first run: the starting point, kept in the state
    store.put(bucket, "in/while-down.txt", b"d")
    after = make(asset=f"{bucket}/in", graph_poll_interval_s=3600)
    after.state = before.state  # a restart: the core still holds the cursor
    stop = anyio.Event()
    with anyio.fail_after(20):
        async for batch in after.watch(stop):
            assert [item.location for item in batch] == ["in/while-down.txt"]
            stop.set()
            break


async def test_sites_and_libraries_are_resolved_by_url_and_name(
    store: GraphStore, fake_graph: FakeGraph, make: Make
) -> None:
    site = unique_drive(store, create=False)
    site_path = f"sites/{site}"
    for name in ("Documents", "Contracts"):
        fake_graph.add_drive(
            f"b!{site}-{name}", name, site_host="contoso.sharepoint.com", site_path=site_path
        )
    fake_graph.put(f"b!{site}-Contracts", "signed/c.pdf", b"%PDF")
    by_url = make(sp_site_url=f"https://contoso.sharepoint.com/{site_path}", sp_drive_name="Contracts")
    assert [i.metainfo async for i in by_url.enumerate()] == ["Contracts/signed/c.pdf"]
    default = make(sp_hostname="contoso.sharepoint.com", sp_site_path=f"/{site_path}")
    assert (await default.drive()).name == "Documents"
    missing = make(sp_site_url=f"https://contoso.sharepoint.com/{site_path}", sp_drive_name="Nope")
    with pytest.raises(Exception, match="'Nope' does not exist"):
        await missing.check()


async def test_a_certificate_credential_gets_tokens(
    store: GraphStore, fake_graph: FakeGraph, make: Make, tmp_path: Path
) -> None:
    pem, certificate = rsa_certificate()
    path = tmp_path / "app.pem"
    path.write_bytes(pem)
    fake_graph.add_client("cert-client", certificate=certificate)
    bucket = unique_drive(store)
    store.put(bucket, "a.txt", b"a")
    connector = make(
        asset=bucket, sp_client_id="cert-client", sp_client_secret=None, sp_client_cert_path=str(path)
    )
    assert (await connector.read("a.txt")).data == b"a"
    fake_graph.add_client("other-client", certificate=rsa_certificate()[1])
    wrong = make(
        asset=bucket, sp_client_id="other-client", sp_client_secret=None, sp_client_cert_path=str(path)
    )
    with pytest.raises(Exception, match="credentials"):
        await wrong.check()
    assert CLIENT_ID != "cert-client"


def rsa_certificate() -> tuple[bytes, bytes]:
    """A PEM of an RSA key and its self-signed certificate, and the certificate alone."""
    from datetime import timedelta

    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa

    from devstack.certs import private_pem, self_signed

    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    cert = self_signed(key, "dsx-connect graph app", days=1, backdate=timedelta(minutes=1))
    cert_pem = cert.public_bytes(serialization.Encoding.PEM)
    return private_pem(key) + cert_pem, cert_pem


@pytest.mark.e2e
def test_a_monitoring_connector_subscribes_and_deletes_its_subscription_at_stop(
    store: GraphStore, fake_graph: FakeGraph, core: Core, logs_dir: Path
) -> None:
    bucket = unique_drive(store)
    port = free_port()
    url = f"http://127.0.0.1:{port}/{store.name}"
    env = {
        **store.connector_env(),
        **store.deployment_env(bucket, url),
        "DSXCONNECTOR_DSX_CONNECT_URL": core.url,  # keeps the monitor's delta link
        "DSXCONNECTOR_CONNECTOR_URL": url,
    }
    argv = [PYTHON, "-m", f"connectors.{store.package}", "serve", "--host", "127.0.0.1", "--port", str(port)]
    proc = ServiceProcess(f"{store.package}-sub-{port}", argv, base_env(**env), logs_dir).start()

    def subscriptions() -> list[dict[str, Any]]:
        found = fake_graph.stats()["subscriptions"]
        return [s for s in found if s["url"] == f"{url}/webhook/event"]

    try:
        (created,) = wait_for(subscriptions, timeout=30, what="the subscription")  # type: ignore[misc]
        assert created["resource"] == f"/drives/{drive_id(bucket)}/root"
        assert created["client_state"] == CLIENT_STATE
    finally:
        proc.stop()
    assert subscriptions() == [], proc.log_tail()


async def test_moves_resolve_name_conflicts_and_tags_are_written_once(store: GraphStore, make: Make) -> None:
    from shared.models import ItemActionType, RequestedAction

    bucket = unique_drive(store)
    connector = make(asset=f"{bucket}/in")
    for n in range(2):
        store.put(bucket, "in/bad.com", b"bad %d" % n)
        moved = await connector.act("in/bad.com", RequestedAction(type=ItemActionType.MOVE))
        assert moved.status == "success"
    assert store.keys(bucket, "dsxconnect-quarantine/") == [
        "dsxconnect-quarantine/in/bad (1).com",
        "dsxconnect-quarantine/in/bad.com",
    ]
    assert store.get(bucket, "dsxconnect-quarantine/in/bad (1).com") == b"bad 1"

    store.put(bucket, "in/tagged.com", b"x")
    tag = RequestedAction(type=ItemActionType.TAG)
    await connector.act("in/tagged.com", tag)
    version = (await connector.read("in/tagged.com")).version
    await connector.act("in/tagged.com", tag, version)  # rescanned after its own tag: nothing to write
    assert (await connector.read("in/tagged.com")).version == version
    assert store.tags(bucket, "in/tagged.com") == {"Verdict": "Malicious", "ScannedBy": "dsx-connect"}


async def test_tags_go_to_a_list_column_when_one_is_named(
    store: GraphStore, fake_graph: FakeGraph, make: Make
) -> None:
    from shared.models import ItemActionType, RequestedAction

    bucket = unique_drive(store)
    store.put(bucket, "in/bad.com", b"x")
    connector = make(asset=f"{bucket}/in", graph_tag_field="DsxVerdict")
    outcome = await connector.act("in/bad.com", RequestedAction(type=ItemActionType.TAG, tags={"Job": "j-1"}))
    assert outcome.status == "success"
    item = fake_graph.item(drive_id(bucket), "in/bad.com") or {}
    assert item["fields"] == {"DsxVerdict": "Verdict=Malicious; ScannedBy=dsx-connect; Job=j-1"}
    assert "description" not in item


async def test_subscriptions_are_validated_renewed_recreated_and_deleted(
    store: GraphStore, fake_graph: FakeGraph, make: Make
) -> None:
    import threading

    import uvicorn

    from connectors.graph.drive import Subscription

    bucket, port = unique_drive(store), free_port()
    url = f"http://127.0.0.1:{port}/{store.name}/webhook/event"
    connector = make(asset=bucket, webhook_url=url, graph_subscription_ttl_s=3600)
    app = create_connector_app(connector)  # served for Graph's validation request; no lifespan needed
    server = uvicorn.Server(
        uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="off")
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()

    def ours() -> list[dict[str, Any]]:
        return [s for s in fake_graph.stats()["subscriptions"] if s["url"] == url]

    try:
        await anyio.to_thread.run_sync(
            lambda: wait_for(lambda: server.started, timeout=15, what="the connector")
        )
        first = await connector._subscribe()
        (made,) = ours()
        assert made["id"] == first.id and made["client_state"] == CLIENT_STATE
        renewed = await connector._renew(Subscription(first.id, first.expires))
        assert renewed.id == first.id and ours()[0]["expires"] != made["expires"]
        await connector.client.request("DELETE", f"/subscriptions/{first.id}")  # Graph dropped it
        again = await connector._renew(renewed)
        assert again.id != first.id and [s["id"] for s in ours()] == [again.id]
        await connector._unsubscribe(again)
        assert ours() == []
    finally:
        server.should_exit = True
        await anyio.to_thread.run_sync(lambda: thread.join(timeout=15))


async def test_a_kept_delta_link_outside_graph_is_never_sent_the_token(store: GraphStore, make: Make) -> None:
    """The delta links live in the core's connector state, which its API writes: a link to another
    host was followed with the app's bearer token (tenant-wide Files.ReadWrite.All, typically).
    Such a link is now ignored (a whole scan, a monitor starting now) and a Graph page's link
    elsewhere is refused."""
    seen: list[str | None] = []

    def collect(request: Request) -> JSONResponse:
        seen.append(request.headers.get("authorization"))
        return JSONResponse({"value": []})

    bucket = unique_drive(store)
    store.put(bucket, "docs/a.txt", b"a")
    connector = make(asset=f"{bucket}/docs")
    assert await scan(connector) == ["docs/a.txt"]
    with serving(Starlette(routes=[Route("/{path:path}", collect)]), name="collector") as base:
        foreign = f"{base}/v1.0/collect?token=x"
        kept = json.loads(await connector.state.get(SCAN_CURSOR) or "{}")
        await connector.state.put(SCAN_CURSOR, json.dumps({**kept, "link": foreign}))
        await connector.state.put(MONITOR_CURSOR, foreign)
        assert await scan(connector) == ["docs/a.txt"]  # a whole scan instead
        assert await connector.changes() == []  # the monitor starts from now
        assert (await connector.state.get(MONITOR_CURSOR) or "").startswith(connector.settings.api_url)
        with pytest.raises(Exception, match="refused a Graph link outside"):
            await connector.client.json("GET", foreign)
    assert seen == []


async def test_two_full_scans_at_once_each_keep_only_their_own_cursor(store: GraphStore, make: Make) -> None:
    """The delta link a scan listed up to was one slot per connector: a scan completing after
    another had listed kept the other's later link, and when that other scan was then cancelled,
    what only it had seen was skipped by every later incremental scan."""
    import asyncio

    bucket = unique_drive(store)
    store.put(bucket, "docs/a.txt", b"a")
    connector = make(asset=f"{bucket}/docs")
    assert await scan(connector) == ["docs/a.txt"]

    async def listing(listed: asyncio.Event, complete: asyncio.Event | None) -> list[str]:
        found = [item.location async for item in connector.scan_items()]
        listed.set()
        if complete is not None:  # else: cancelled after listing, never completed
            await complete.wait()
            await connector.scan_completed()
        return found

    store.put(bucket, "docs/b.txt", b"b")
    first_listed, first_complete = asyncio.Event(), asyncio.Event()
    first = asyncio.create_task(listing(first_listed, first_complete))
    await first_listed.wait()
    store.put(bucket, "docs/c.txt", b"c")  # seen by the second scan only
    second_listed = asyncio.Event()
    assert await asyncio.create_task(listing(second_listed, None)) == ["docs/b.txt", "docs/c.txt"]
    first_complete.set()
    assert await first == ["docs/b.txt"]
    assert await scan(connector) == ["docs/c.txt"]  # not lost with the cancelled scan
