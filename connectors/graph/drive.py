"""The Graph drive connector: one drive (a SharePoint document library or a OneDrive), or a folder of it.

Locations are paths inside the drive (``Incoming/report.pdf``), as object keys are in a bucket;
the display name is ``<drive name>/<path>``. Subclasses only say how they find their drive
(:meth:`GraphDriveConnector.find_drive`).

- **Full scan**: ``/drives/{id}/root/delta`` pages (``$top``), a page at a time (constant memory;
  a bounded cache maps folder ids to paths, as Graph's delta items carry no path). With
  ``GRAPH_INCREMENTAL_SCAN`` the delta link of a completed scan is kept in the core (SPEC §4 KV)
  and the next scan reads only what changed since. 410 ``resyncRequired`` restarts from scratch.
- **Reads** use the item's pre-authenticated download URL: one GET up to 1 MiB, ranged GETs of
  ``GRAPH_READ_CHUNK_BYTES`` beyond; the version is the item's ``eTag``.
- **Actions** (``shared.connector.objectstore``): ``delete`` (to the recycle bin), ``move`` (one
  PATCH into the quarantine folder, created when missing, and created again when an admin deleted
  it; a name taken there becomes ``name (1).ext``), ``tag`` (the item's description, or the list
  column ``GRAPH_TAG_FIELD``), ``movetag`` (the description written in the move's PATCH; a list
  column after it); each with ``If-Match: <eTag>`` when the core sends the scanned version.
- **Locations**: Graph paths ignore case and its HTTP stack resolves ``.`` segments, so a location
  with a ``.`` or empty segment is refused and the quarantine is found in any case.
- **Monitoring**: with ``WEBHOOK_URL``, a Graph subscription on the drive root (created at start,
  renewed at 80 % of its lifetime, deleted at stop); notifications whose ``clientState`` is not
  ours are refused (401), the others make the monitor read the delta. Without it, the delta is
  polled every ``GRAPH_POLL_INTERVAL_S``. The monitor's delta link is kept in the core too.
"""

from __future__ import annotations

import abc
import asyncio
import functools
import hmac
import json
import logging
import weakref
from collections import OrderedDict
from collections.abc import AsyncGenerator, AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar
from urllib.parse import quote

import anyio
import httpx

from connectors.graph.auth import GraphTokens
from connectors.graph.client import GraphClient, GraphError, ResyncRequired
from connectors.graph.notifications import ClientStateVerifier
from connectors.graph.settings import GraphSettings
from shared.connector.base import SMALL_ITEM_BYTES, Item, ItemContent, WebhookReply
from shared.connector.buckets import DOT_AND_EMPTY, BucketLayout
from shared.connector.errors import UnsupportedError
from shared.connector.objectstore import ObjectInfo, ObjectStoreConnector, numbered, object_content
from shared.errors import DsxError, NotFoundError, PermanentError, RetryableError

log = logging.getLogger(__name__)

GraphSettingsT = TypeVar("GraphSettingsT", bound=GraphSettings)

#: the layout's bucket: a Graph connector has one drive, and its quarantine is a folder of it
DRIVE = "drive"
SCAN_CURSOR = "delta-scan"
MONITOR_CURSOR = "delta-monitor"
#: folder id → path entries kept while walking a delta (bounded: memory does not grow with the drive)
FOLDER_CACHE = 20000
ITEM_FIELDS = "id,name,eTag,size,file,folder,root,deleted,parentReference"


@dataclass(frozen=True, slots=True)
class Drive:
    id: str
    name: str


@dataclass(slots=True)
class Subscription:
    id: str
    expires: datetime


def item_path(path: str) -> str:
    """``/drives/{id}/root:/a/b`` (a ``parentReference.path``) → ``a/b``."""
    return path.partition("root:")[2].strip("/")


def tag_text(tags: dict[str, str]) -> str:
    return "; ".join(f"{k}={v}" for k, v in tags.items())


def parse_tags(text: str | None) -> dict[str, str]:
    """``Verdict=Malicious; ScannedBy=dsx-connect`` → a dict (other text is kept under ``""``)."""
    tags: dict[str, str] = {}
    for part in (text or "").split(";"):
        key, sep, value = part.strip().partition("=")
        if sep and key:
            tags[key.strip()] = value.strip()
        elif part.strip():
            tags[""] = (tags.get("", "") + " " + part.strip()).strip()
    return tags


def utc(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


class GraphDriveConnector(ObjectStoreConnector[GraphSettingsT]):
    """A connector over one Graph drive; subclasses implement :meth:`find_drive`."""

    watch_needs_core = True  # the monitor's delta link is kept in the core

    def __init__(
        self, settings: GraphSettingsT, *, transport: httpx.AsyncBaseTransport | None = None
    ) -> None:
        self._transport = transport  # tests may replace the network
        self.graph: GraphClient | None = None
        self._drive: Drive | None = None
        self._folders: OrderedDict[str, str] = OrderedDict()
        self._folder_ids: dict[str, str] = {}
        self._monitor_lock = asyncio.Lock()
        self._changed = asyncio.Event()
        self._monitoring = False
        # the delta link each running full scan listed up to, by the task that lists and then
        # completes it: two scans at once must not keep each other's (one may yet be cancelled)
        # (weak: a scan cancelled after listing never collects its link)
        self._pending_scan_cursors: weakref.WeakKeyDictionary[asyncio.Task[Any], str] = (
            weakref.WeakKeyDictionary()
        )
        super().__init__(settings)

    def configure(self, settings: GraphSettingsT) -> None:
        layout = BucketLayout.build(
            f"{DRIVE}/{settings.asset}",
            settings.item_action_move_metainfo,
            None,
            refused_segments=DOT_AND_EMPTY,  # httpx resolves "./"; Graph has no empty names
            casefold=True,  # Graph paths ignore case: "DSXCONNECT-QUARANTINE/x" is the quarantine
        )
        if self.graph is None:  # one client per connector; asset changes reuse it
            self.graph = GraphClient(settings, GraphTokens(settings), self._transport)
        super().configure(settings)
        self.layout = layout
        self._folder_ids.clear()

    # ---- the drive -------------------------------------------------------------------------

    @abc.abstractmethod
    async def find_drive(self) -> dict[str, Any]:
        """The drive resource (``id``, ``name``) from the connector's own settings (site, user)."""

    async def drive(self) -> Drive:
        """The drive, resolved once: ``GRAPH_DRIVE_ID``, else :meth:`find_drive`."""
        if self._drive is None:
            drive_id = self.settings.graph_drive_id
            if drive_id:
                try:
                    found = await self.client.json("GET", f"/drives/{quote(drive_id, safe='')}")
                except NotFoundError:
                    raise NotFoundError(
                        f"drive {drive_id!r} does not exist (DSXCONNECTOR_GRAPH_DRIVE_ID)"
                    ) from None
            else:
                found = await self.find_drive()
            self._drive = Drive(str(found["id"]), str(found.get("name") or found["id"]))
        return self._drive

    @property
    def client(self) -> GraphClient:
        assert self.graph is not None
        return self.graph

    async def _base(self) -> str:
        return f"/drives/{quote((await self.drive()).id, safe='')}"

    async def _by_path(self, key: str) -> str:
        """The URL of the item at ``key`` (path addressing)."""
        base = await self._base()
        return f"{base}/root:/{quote(key)}" if key else f"{base}/root"

    def asset_label(self) -> str:
        return self.settings.asset_display_name or self.where(DRIVE, self.settings.asset).rstrip("/")

    def where(self, bucket: str, key: str) -> str:
        return f"{self._drive.name if self._drive else DRIVE}/{key}"

    async def check(self) -> None:
        await self.drive()
        if self.settings.asset:
            try:
                await self.client.json(
                    "GET", await self._by_path(self.settings.asset), params={"$select": "id"}
                )
            except NotFoundError:
                raise NotFoundError(f"folder {self.settings.asset!r} does not exist in the drive") from None

    # ---- enumeration by delta ----------------------------------------------------------------

    def enumerate(self) -> AsyncIterator[Item]:
        """Every file of the asset (a delta read from scratch; no cursor is kept)."""
        return self._delta_items(None, None)

    def scan_items(self) -> AsyncIterator[Item]:
        """A full scan: with ``GRAPH_INCREMENTAL_SCAN``, only changes since the last completed scan."""
        return self._delta_items(SCAN_CURSOR if self.settings.graph_incremental_scan else None, "scan")

    async def scan_completed(self) -> None:
        task = asyncio.current_task()
        cursor = self._pending_scan_cursors.pop(task, None) if task is not None else None
        if cursor is not None and self.settings.graph_incremental_scan:
            await self.state.put(SCAN_CURSOR, json.dumps({"scope": self._scope(), "link": cursor}))

    def _scope(self) -> list[str]:
        """What a scan cursor is valid for: another asset or filter needs a whole scan again."""
        return [self.settings.graph_drive_id or "", self.settings.asset, self.settings.filter]

    async def _delta_items(self, cursor_key: str | None, remember: str | None) -> AsyncIterator[Item]:
        start = None
        if cursor_key:
            try:
                kept = json.loads(await self.state.get(cursor_key) or "null")
            except ValueError:
                kept = None
            if isinstance(kept, dict) and kept.get("scope") == self._scope():
                start = self._kept_link(str(kept.get("link") or "") or None, cursor_key)
        async for item in self._delta(start, remember):
            yield item

    def _kept_link(self, link: str | None, key: str) -> str | None:
        """A delta link kept in the core, or None when it points outside Graph: the state is
        writable through the core's API, and a link elsewhere would be sent the bearer token."""
        if link is None or self.client.is_graph_url(link):
            return link
        log.warning("ignored a kept delta link outside Graph; starting over", extra={"cursor": key})
        return None

    async def _delta(self, start: str | None, remember: str | None) -> AsyncIterator[Item]:
        """Files of the asset from a delta read starting at ``start`` (None: the whole drive).

        The final delta link goes to ``_pending_scan_cursors`` (``remember="scan"``, by task) or to
        ``_monitor_link`` (``"monitor"``).
        """
        base = await self._base()
        first = f"{base}/root/delta"
        url, params = (start, None) if start else (first, {"$top": self.settings.graph_page_size})
        while True:
            try:
                page = await self.client.json("GET", url, params=params)
            except ResyncRequired:
                log.warning(
                    "Graph expired the delta token; enumerating the drive again", extra={"url": first}
                )
                url, params = first, {"$top": self.settings.graph_page_size}
                continue
            for entry in page.get("value") or ():
                item = await self._item_of(entry)
                if item is not None:
                    yield item
            next_link, delta_link = page.get("@odata.nextLink"), page.get("@odata.deltaLink")
            if next_link:
                url, params = str(next_link), None
                continue
            task = asyncio.current_task()
            if remember == "scan" and task is not None:
                if delta_link:
                    self._pending_scan_cursors[task] = str(delta_link)
                else:
                    self._pending_scan_cursors.pop(task, None)
            elif remember == "monitor":
                self._monitor_link = str(delta_link) if delta_link else None
            return

    async def _item_of(self, entry: dict[str, Any]) -> Item | None:
        """The scan item for one delta entry (None for folders, deletions, and what the asset skips)."""
        entry_id = str(entry.get("id", ""))
        if entry.get("root") is not None:
            self._remember_folder(entry_id, "")
            return None
        if entry.get("deleted") is not None:
            self._folders.pop(entry_id, None)
            return None
        parent = entry.get("parentReference") or {}
        name = str(entry.get("name", ""))
        if "path" in parent:
            parent_path: str | None = item_path(str(parent["path"]))
        else:
            parent_path = await self._folder_path(str(parent.get("id", "")))
        if parent_path is None:
            return None
        path = f"{parent_path}/{name}" if parent_path else name
        if entry.get("folder") is not None:
            self._remember_folder(entry_id, path)
            return None
        if entry.get("file") is None:
            return None  # a package (OneNote notebook) or something else without bytes
        item = self.layout.item(path, entry.get("size"), self.filter)
        if item is None:
            return None
        version = str(entry["eTag"]) if entry.get("eTag") else None  # as read answers it (scan cache)
        return Item(item.location, self.where(DRIVE, item.location), item.size, version)

    def _remember_folder(self, folder_id: str, path: str) -> None:
        self._folders[folder_id] = path
        self._folders.move_to_end(folder_id)
        while len(self._folders) > FOLDER_CACHE:
            self._folders.popitem(last=False)

    async def _folder_path(self, folder_id: str) -> str | None:
        """A folder's path: from the cache, else asked of Graph (its ``parentReference.path``)."""
        if folder_id in self._folders:
            self._folders.move_to_end(folder_id)
            return self._folders[folder_id]
        if not folder_id:
            return None
        try:
            found = await self.client.json(
                "GET",
                f"{await self._base()}/items/{quote(folder_id, safe='')}",
                params={"$select": ITEM_FIELDS},
            )
        except NotFoundError:
            return None  # deleted since
        if found.get("root") is not None:
            path = ""
        else:
            parent = found.get("parentReference") or {}
            above = item_path(str(parent.get("path", "")))
            path = f"{above}/{found.get('name', '')}" if above else str(found.get("name", ""))
        self._remember_folder(folder_id, path)
        return path

    # ---- reads -----------------------------------------------------------------------------

    async def _file(self, key: str) -> dict[str, Any]:
        found = await self.client.json("GET", await self._by_path(key))
        if found.get("file") is None:
            raise NotFoundError(f"not a file: {key!r}")
        return found

    async def read(self, location: str) -> ItemContent:
        key = self.resolve(location)
        found = await self._file(key)
        size, version = int(found.get("size") or 0), found.get("eTag")
        url = found.get("@microsoft.graph.downloadUrl")
        if not url:  # the content endpoint redirects to the same pre-authenticated URL
            response = await self.client.request("GET", f"{await self._by_path(key)}:/content")
            url = response.headers.get("Location")
            if not url:
                raise RetryableError(f"Graph gave no download URL for {key!r}", status_code=503)
        # counted against the size Graph named: a cut download is a failed read, never a shorter file
        if size <= SMALL_ITEM_BYTES:
            return object_content(key, size, version, data=await self.client.download(str(url)))
        return object_content(key, size, version, chunks=self._ranges(str(url), size))

    async def _ranges(self, url: str, size: int) -> AsyncIterator[bytes]:
        step = self.settings.graph_read_chunk_bytes
        for first in range(0, size, step):
            yield await self.client.download(url, first, min(first + step, size) - 1)

    # ---- the object-store primitives -------------------------------------------------------

    async def head(self, bucket: str, key: str) -> str | None:
        found = await self._file(key)
        return str(found["eTag"]) if found.get("eTag") else None

    async def delete(self, bucket: str, key: str, version: str | None) -> None:
        await self.client.request("DELETE", await self._by_path(key), headers=_if_match(version))

    async def copy(
        self, bucket: str, key: str, version: str | None, dest_bucket: str, dest_key: str
    ) -> str | None:
        raise UnsupportedError("a Graph connector moves items in place; it never copies them")

    async def describe(self, bucket: str, key: str) -> ObjectInfo | None:
        raise UnsupportedError("a Graph connector moves items in place; it never copies them")

    async def move(
        self,
        bucket: str,
        key: str,
        version: str | None,
        dest_bucket: str,
        dest_key: str,
        tags: dict[str, str] | None = None,
    ) -> str:
        """One PATCH (parent, name and, for a ``movetag``, the description); a taken name becomes
        ``name (1).ext``; a quarantine folder deleted since it was looked up is created again."""
        folder, _, name = dest_key.rpartition("/")
        folder_id = await self._ensure_folder(folder)
        target = await self._by_path(key)
        extra: dict[str, Any] = {}
        if tags is not None and not self.settings.graph_tag_field:
            found = await self.client.json("GET", target, params={"$select": "id,description"})
            text = _described(found.get("description"), tags)
            extra = {} if text is None else {"description": text}
        found_again = False
        n = 0
        while n < 100:
            candidate = numbered(name, n)
            body = {"parentReference": {"id": folder_id}, "name": candidate, **extra}
            try:
                await self.client.request("PATCH", target, json=body, headers=_if_match(version))
            except NotFoundError:
                # the item, or the folder (an admin deleted it): Graph answers 404 itemNotFound for both
                if found_again:
                    raise
                found_again, stale = True, folder_id
                self._folder_ids.clear()  # its parents' ids may be stale too
                folder_id = await self._ensure_folder(folder)
                if folder_id == stale:
                    raise
                log.info("quarantine folder was deleted; created again", extra={"folder": folder})
                continue
            except GraphError as exc:
                if exc.code == "nameAlreadyExists" or exc.status_code == 409:
                    n += 1
                    continue  # a name taken in the quarantine: try the next
                raise
            moved = f"{folder}/{candidate}" if folder else candidate
            if tags is not None and self.settings.graph_tag_field:
                await self.tag(bucket, moved, tags, None)  # a list column: a request of its own
            return moved
        raise PermanentError(f"no free name for {name!r} in {folder!r} after 100 tries")

    async def _ensure_folder(self, path: str) -> str:
        """The id of the folder at ``path``, creating it and its parents when missing."""
        if path in self._folder_ids:
            return self._folder_ids[path]
        try:
            found = await self.client.json("GET", await self._by_path(path), params={"$select": "id,folder"})
        except NotFoundError:
            parent, _, name = path.rpartition("/")
            parent_id = await self._ensure_folder(parent) if parent else None
            where = (
                f"{await self._base()}/items/{quote(parent_id, safe='')}"
                if parent_id
                else f"{await self._base()}/root"
            )
            body = {"name": name, "folder": {}, "@microsoft.graph.conflictBehavior": "fail"}
            try:
                found = await self.client.json("POST", f"{where}/children", json=body)
                log.info("quarantine folder created", extra={"folder": path})
            except GraphError as exc:
                if exc.status_code != 409:
                    raise
                found = await self.client.json(
                    "GET", await self._by_path(path), params={"$select": "id,folder"}
                )
        if found.get("folder") is None:
            raise PermanentError(f"{path!r} exists in the drive and is not a folder")
        self._folder_ids[path] = str(found["id"])
        return self._folder_ids[path]

    async def tag(self, bucket: str, key: str, tags: dict[str, str], version: str | None) -> None:
        target = await self._by_path(key)
        field = self.settings.graph_tag_field
        if field:
            # a list item's fields take no If-Match of the file's eTag: the head just before is the check
            fields = await self.client.json("GET", f"{target}:/listItem/fields")
            merged = parse_tags(fields.get(field)) | tags
            if merged != parse_tags(fields.get(field)):
                await self.client.request(
                    "PATCH", f"{target}:/listItem/fields", json={field: tag_text(merged)}
                )
            return
        found = await self.client.json("GET", target, params={"$select": "id,description"})
        text = _described(found.get("description"), tags)
        if text is not None:
            await self.client.request("PATCH", target, json={"description": text}, headers=_if_match(version))

    # ---- monitoring ------------------------------------------------------------------------

    _monitor_link: str | None = None

    async def changes(self) -> list[Item]:
        """Files changed since the monitor's last look (its delta link kept in the core)."""
        items, link = await self._read_changes()
        await self._commit(link)
        return items

    async def _read_changes(self) -> tuple[list[Item], str | None]:
        """Changed files and the delta link to keep once they are submitted."""
        async with self._monitor_lock:
            start = self._kept_link(await self.state.get(MONITOR_CURSOR), MONITOR_CURSOR)
            if start is None:  # nothing seen yet (or a cursor not ours): from now on
                return [], await self._latest()
            self._monitor_link = None
            items = [item async for item in self._delta(start, "monitor")]
            return items, self._monitor_link

    async def _commit(self, link: str | None) -> None:
        if link:
            await self.state.put(MONITOR_CURSOR, link)

    async def _latest(self) -> str:
        """A delta link that starts now (``token=latest``)."""
        page = await self.client.json("GET", f"{await self._base()}/root/delta", params={"token": "latest"})
        link = page.get("@odata.deltaLink")
        if not link:
            raise RetryableError("Graph answered no delta link for token=latest", status_code=503)
        return str(link)

    async def watch(self, stop: anyio.Event) -> AsyncGenerator[list[Item]]:
        """Changed files: on each genuine notification (``WEBHOOK_URL``), else every poll interval."""
        # what changed while the connector was down (a first start only sets the starting point)
        missed, link = await self._read_changes()
        self._monitoring = True
        subscription = await self._subscribe() if self.settings.webhook_url else None
        try:
            for start in range(0, len(missed), 500):
                yield missed[start : start + 500]
            await self._commit(link)  # kept once submitted: a crash before reads them again
            while not stop.is_set():
                wait = self.settings.graph_poll_interval_s
                if subscription is not None:
                    ttl = self.settings.graph_subscription_ttl_s
                    renew_at = subscription.expires - timedelta(seconds=0.2 * ttl)
                    wait = (renew_at - datetime.now(UTC)).total_seconds()
                    if wait <= 0:
                        subscription = await self._renew(subscription)
                        continue
                await _wait_any(wait, stop, self._changed)
                if stop.is_set():
                    break
                if subscription is not None and not self._changed.is_set():
                    continue  # time to renew, nothing changed
                self._changed.clear()
                items, link = await self._read_changes()
                for start in range(0, len(items), 500):
                    yield items[start : start + 500]
                await self._commit(link)
        finally:
            self._monitoring = False
            if subscription is not None:
                with anyio.CancelScope(shield=True):
                    await self._unsubscribe(subscription)

    def _expiry(self) -> str:
        when = datetime.now(UTC) + timedelta(seconds=self.settings.graph_subscription_ttl_s)
        return when.isoformat().replace("+00:00", "Z")

    async def _subscribe(self) -> Subscription:
        drive = await self.drive()
        body = {
            "changeType": "updated",
            "notificationUrl": self.settings.webhook_url,
            "resource": f"/drives/{drive.id}/root",
            "expirationDateTime": self._expiry(),
            "clientState": self.settings.graph_client_state.get_secret_value(),
        }
        found = await self.client.json("POST", "/subscriptions", json=body)
        log.info(
            "Graph subscription created",
            extra={"subscription": found.get("id"), "url": self.settings.webhook_url},
        )
        return Subscription(str(found["id"]), utc(str(found["expirationDateTime"])))

    async def _renew(self, subscription: Subscription) -> Subscription:
        try:
            found = await self.client.json(
                "PATCH",
                f"/subscriptions/{quote(subscription.id, safe='')}",
                json={"expirationDateTime": self._expiry()},
            )
        except NotFoundError:  # expired or removed meanwhile: a new one
            return await self._subscribe()
        log.info("Graph subscription renewed", extra={"subscription": subscription.id})
        return Subscription(subscription.id, utc(str(found["expirationDateTime"])))

    async def _unsubscribe(self, subscription: Subscription) -> None:
        try:
            with anyio.fail_after(5):
                await self.client.request("DELETE", f"/subscriptions/{quote(subscription.id, safe='')}")
            log.info("Graph subscription deleted", extra={"subscription": subscription.id})
        except (DsxError, TimeoutError) as exc:
            log.warning(
                "Graph subscription not deleted", extra={"subscription": subscription.id, "error": str(exc)}
            )

    def webhook_verifier(self) -> ClientStateVerifier:
        """Notifications prove themselves with the subscription's ``clientState`` (401 otherwise)."""
        return ClientStateVerifier(self.settings.graph_client_state)

    async def webhook(self, event: dict[str, Any]) -> list[Item] | WebhookReply:
        """Graph's validation handshake, and change notifications (``clientState`` checked again here,
        so a connector running with ``DSXCONNECTOR_WEBHOOK__VERIFY=false`` still refuses forgeries)."""
        token = event.get("validationToken")
        if isinstance(token, str):
            return WebhookReply({}, text=token)
        notifications = event.get("value")
        if not isinstance(notifications, list) or not notifications:
            raise PermanentError("not a Graph change notification: 'value' is missing")
        secret = self.settings.graph_client_state.get_secret_value().encode()
        for one in notifications:
            state = one.get("clientState") if isinstance(one, dict) else None
            if not isinstance(state, str) or not hmac.compare_digest(state.encode(), secret):
                log.warning("Graph notification refused: clientState does not match")
                raise PermanentError("notification refused: clientState does not match", status_code=401)
        if self._monitoring:  # the monitor reads the delta; Graph wants an answer within 3 s
            self._changed.set()
            return WebhookReply({"status": "success", "message": "changes will be read", "submitted": 0}, 202)
        items, link = await self._read_changes()
        # the delta link moves once the core has the items: a failed submission answers 503, and
        # Graph's redelivery reads the same changes again
        return WebhookReply(items=items, after_submit=functools.partial(self._commit, link))

    # ---- errors and shutdown ---------------------------------------------------------------

    def classify_error(self, exc: BaseException) -> DsxError:
        if isinstance(exc, httpx.HTTPError):
            return RetryableError(f"Graph unreachable: {type(exc).__name__}: {exc}", status_code=503)
        return super().classify_error(exc)

    async def aclose(self) -> None:
        if self.graph is not None:
            await self.graph.aclose()


def _described(description: str | None, tags: dict[str, str]) -> str | None:
    """The description with ``tags`` merged in; None when they are there already (writing the same
    tags again would change the item, and notify, for nothing)."""
    current = parse_tags(description)
    merged = current | tags
    if merged == current:
        return None
    note = merged.pop("", None)
    return tag_text(merged) + (f"; {note}" if note else "")


def _if_match(version: str | None) -> dict[str, str]:
    return {"If-Match": version} if version else {}


async def _wait_any(timeout: float, *events: anyio.Event | asyncio.Event) -> None:
    """Return when one of ``events`` is set, or after ``timeout`` seconds."""
    with anyio.move_on_after(timeout):
        async with anyio.create_task_group() as group:

            async def wait(event: anyio.Event | asyncio.Event) -> None:
                await event.wait()
                group.cancel_scope.cancel()

            for event in events:
                group.start_soon(wait, event)
