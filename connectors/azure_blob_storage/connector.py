"""The Azure Blob Storage connector: one ``Connector`` subclass over a container, or a prefix of it."""

from __future__ import annotations

import base64
import logging
import re
import time
from collections.abc import AsyncIterator, Iterator
from typing import Any
from urllib.parse import parse_qsl, quote

import anyio.to_thread
from azure.core import MatchConditions
from azure.core.credentials import AzureSasCredential
from azure.core.exceptions import (
    AzureError,
    ClientAuthenticationError,
    HttpResponseError,
    ResourceExistsError,
    ResourceModifiedError,
    ResourceNotFoundError,
    ServiceRequestError,
    ServiceResponseError,
)
from azure.storage.blob import BlobClient, BlobServiceClient

from connectors.azure_blob_storage.event_grid import EventGridVerifier
from connectors.azure_blob_storage.manifest import MANIFEST
from connectors.azure_blob_storage.settings import AzureBlobStorageSettings
from connectors.azure_blob_storage.version import __version__
from shared.connector import SMALL_ITEM_BYTES, Item, ItemContent, WebhookReply, iterate_in_thread
from shared.connector.buckets import BucketLayout
from shared.connector.errors import ItemChangedError
from shared.connector.objectstore import (
    DestinationTaken,
    ObjectInfo,
    ObjectStoreConnector,
    object_content,
    scrubbed,
)
from shared.errors import DsxError, NotFoundError, PermanentError, RetryableError
from shared.redaction import register_secret

log = logging.getLogger(__name__)

VALIDATION_EVENT = "Microsoft.EventGrid.SubscriptionValidationEvent"
BLOB_CREATED = "Microsoft.Storage.BlobCreated"
_SUBJECT = re.compile(r"/blobServices/default/containers/(?P<container>[^/]+)/blobs/(?P<name>.+)")
#: bytes per ranged GET of a streamed download (the SDK holds one range at a time)
DOWNLOAD_CHUNK_BYTES = 4 * 1024 * 1024
#: index tags a blob keeps; bytes of metadata (names and values) it keeps
MAX_INDEX_TAGS = 10
MAX_METADATA_BYTES = 8 * 1024


class AzureBlobStorageConnector(ObjectStoreConnector[AzureBlobStorageSettings]):
    """Scans the container (or ``container/prefix``) ``DSXCONNECTOR_ASSET`` of one storage account.

    Locations are full blob names; the display name is ``container/name``. Listing follows the
    SDK's pages (constant memory); reads stream ``download_blob().chunks()`` in 4 MiB ranges.
    Actions: ``delete`` (with its snapshots), ``move`` (server-side copy to the quarantine keeping
    the name, then delete), ``tag`` (blob index tags, or metadata with ``AZURE_TAG_MODE=metadata``,
    ``Verdict=Malicious``/``ScannedBy=dsx-connect`` merged into the existing ones), ``movetag``.
    Change monitoring: Event Grid ``Microsoft.Storage.BlobCreated`` events posted to
    ``/webhook/event`` (Event Grid and CloudEvents schemas, both handshakes answered), each
    request carrying the shared secret (``connectors.azure_blob_storage.event_grid``).

    Limits: a move copies within the account (Copy Blob), the quarantine container must exist;
    blob index tags are unavailable on accounts with a hierarchical namespace (use metadata). A blob
    keeps at most 10 index tags and 8 KiB of metadata: the verdict's keys win, other keys are
    dropped (logged) until they fit.

    Secrets: the SAS token, account key and connection string are registered with
    ``shared.redaction`` (masked in every log line), and error messages drop the query of any URL
    an SDK exception quotes (where a SAS rides).
    """

    version = __version__
    manifest = MANIFEST

    def __init__(self, settings: AzureBlobStorageSettings) -> None:
        self.service: Any = None
        super().__init__(settings)

    def configure(self, settings: AzureBlobStorageSettings) -> None:
        layout = settings.layout()
        _register_secrets(settings)
        if self.service is None:  # one client per connector; asset changes reuse it
            self.service = _service(settings)
        super().configure(settings)
        self.layout: BucketLayout = layout
        layout.warn_if_quarantine_in_asset("container (DSXCONNECTOR_AZURE_QUARANTINE_CONTAINER)")
        self.container = self.service.get_container_client(layout.asset.bucket)

    # ---- enumeration -----------------------------------------------------------------------

    def enumerate(self) -> AsyncIterator[Item]:
        return iterate_in_thread(self._walk())

    def _walk(self) -> Iterator[Item]:
        blobs = self.container.list_blobs(
            name_starts_with=self.layout.asset.prefix or None,
            results_per_page=self.settings.azure_list_page_size,
        )
        for blob in blobs:
            item = self.layout.item(blob.name, blob.size, self.filter, version=_version(blob.etag))
            if item is not None:
                yield item

    async def check(self) -> None:
        pages = self.container.list_blobs(
            name_starts_with=self.layout.asset.prefix or None, results_per_page=1
        )
        await anyio.to_thread.run_sync(lambda: next(pages.by_page(), None))

    # ---- read and act ----------------------------------------------------------------------

    async def read(self, location: str) -> ItemContent:
        return await anyio.to_thread.run_sync(self._download, self.resolve(location))

    def _download(self, key: str) -> ItemContent:
        downloader = self.container.get_blob_client(key).download_blob(max_concurrency=1)
        version = _version(downloader.properties.etag)
        where = self.where(self.layout.asset.bucket, key)
        if downloader.size <= SMALL_ITEM_BYTES:  # one GET already holds it all
            return object_content(where, downloader.size, version, data=downloader.readall())
        chunks = iterate_in_thread(downloader.chunks(), chunk_size=1)
        return object_content(where, downloader.size, version, chunks=chunks)

    # ---- the object-store primitives (shared.connector.objectstore) --------------------------

    def _blob(self, container: str, name: str) -> BlobClient:
        return self.service.get_blob_client(container, name)

    async def head(self, bucket: str, key: str) -> str | None:
        return _version((await self.blocking(self._blob(bucket, key).get_blob_properties)).etag)

    async def delete(self, bucket: str, key: str, version: str | None) -> None:
        blob = self._blob(bucket, key)
        await self.blocking(lambda: blob.delete_blob(delete_snapshots="include", **_if_match(version)))

    async def describe(self, bucket: str, key: str) -> ObjectInfo | None:
        try:
            found = await self.blocking(self._blob(bucket, key).get_blob_properties)
        except ResourceNotFoundError:
            return None
        md5 = found.content_settings.content_md5  # kept by Copy Blob; set for blobs put in one request
        digest = base64.b64encode(bytes(md5)).decode() if md5 else None
        return ObjectInfo(_version(found.etag), found.size, digest)

    async def copy(
        self, bucket: str, key: str, version: str | None, dest_bucket: str, dest_key: str
    ) -> str | None:
        source, target = self._blob(bucket, key), self._blob(dest_bucket, dest_key)
        # If-None-Match: * on the destination: an existing blob is never replaced (409 BlobAlreadyExists)
        guard: dict[str, Any] = {"match_condition": MatchConditions.IfMissing}
        if version:
            guard |= {"source_etag": f'"{version}"', "source_match_condition": MatchConditions.IfNotModified}
        return await self.blocking(lambda: self._copy(source, target, guard))

    async def tag(self, bucket: str, key: str, tags: dict[str, str], version: str | None) -> str | None:
        return await self.blocking(lambda: self._tag(bucket, key, tags, version))

    def _tag(self, bucket: str, key: str, tags: dict[str, str], version: str | None) -> str | None:
        blob = self._blob(bucket, key)
        if self.settings.azure_tag_mode == "metadata":  # a new ETag
            current = blob.get_blob_properties().metadata
            metadata = self.merged_tags(bucket, key, current, tags, max_bytes=MAX_METADATA_BYTES)
            return _version(str(blob.set_blob_metadata(metadata, **_if_match(version)).get("etag") or ""))
        # Set Blob Tags has no ETag condition (and leaves the ETag): the head just before acting is the check
        blob.set_blob_tags(
            self.merged_tags(bucket, key, blob.get_blob_tags(), tags, max_count=MAX_INDEX_TAGS)
        )
        return None

    def tag_note(self) -> str:
        return f" ({self.settings.azure_tag_mode})"

    def _copy(self, source: BlobClient, target: BlobClient, guard: dict[str, Any]) -> str | None:
        """Server-side copy, waiting (with backoff) while Azure reports it pending; the copy's version."""
        try:
            copy = target.start_copy_from_url(source.url, **guard)
        except HttpResponseError as exc:
            if _destination_exists(exc):
                raise DestinationTaken(target.blob_name) from None
            raise
        status: str | None = str(copy["copy_status"])
        version = _version(str(copy.get("etag") or ""))
        delay = 0.1
        deadline = time.monotonic() + self.settings.azure_copy_timeout_s
        while status == "pending":
            if time.monotonic() > deadline:
                target.abort_copy(str(copy["copy_id"]))
                raise RetryableError(f"copy to {target.blob_name} still pending after the timeout")
            time.sleep(delay)
            delay = min(delay * 2, 5.0)
            properties = target.get_blob_properties()
            status, version = properties.copy.status, _version(properties.etag)
        if status != "success":
            raise RetryableError(f"copy to {target.blob_name} ended {status}")
        return version

    # ---- change notifications --------------------------------------------------------------

    def webhook_verifier(self) -> EventGridVerifier:
        return EventGridVerifier(self.settings.webhook)

    async def webhook(self, event: dict[str, Any]) -> list[Item] | WebhookReply:
        """Event Grid deliveries (an array of events) and its subscription validation handshake."""
        events = event["events"] if isinstance(event.get("events"), list) else [event]
        items = []
        for one in events:
            if not isinstance(one, dict):
                continue
            kind, data = one.get("eventType") or one.get("type"), one.get("data") or {}
            if kind == VALIDATION_EVENT:
                code = data.get("validationCode") if isinstance(data, dict) else None
                if not code:
                    raise PermanentError("Event Grid validation event without data.validationCode")
                log.info("Event Grid subscription validated", extra={"topic": one.get("topic")})
                return WebhookReply({"validationResponse": code})
            match = _SUBJECT.fullmatch(str(one.get("subject", "")))
            if kind != BLOB_CREATED or match is None:
                continue
            size, tag = (
                (data.get("contentLength"), data.get("eTag")) if isinstance(data, dict) else (None, None)
            )
            version = _version(tag) if isinstance(tag, str) else None  # as read answers it
            item = self.layout.item(match["name"], size, self.filter, match["container"], version)
            if item is not None:
                items.append(item)
        return items

    # ---- errors and shutdown ---------------------------------------------------------------

    def classify_error(self, exc: BaseException) -> DsxError:
        if isinstance(exc, ServiceRequestError | ServiceResponseError):
            return RetryableError(f"Azure Blob Storage unreachable: {_first_line(exc)}", status_code=503)
        if not isinstance(exc, HttpResponseError):  # ClientAuthenticationError is one too
            if isinstance(exc, AzureError):
                return RetryableError(f"Azure error: {_first_line(exc)}", status_code=503)
            return super().classify_error(exc)
        code = getattr(exc, "error_code", None)
        code = str(getattr(code, "value", code) or "")
        text = f"{code}: {_first_line(exc)}" if code else _first_line(exc)
        if isinstance(exc, ResourceModifiedError) or exc.status_code == 412:
            return ItemChangedError(f"blob changed since it was scanned ({text})")
        if isinstance(exc, ResourceNotFoundError) or exc.status_code == 404:
            if code == "ContainerNotFound":
                container = self.layout.asset.bucket
                return NotFoundError(f"container {container!r} does not exist ({text})", status_code=404)
            return NotFoundError(f"blob not found ({text})", status_code=404)
        if isinstance(exc, ClientAuthenticationError) or exc.status_code in (401, 403):
            return PermanentError(
                f"Azure refused the credentials or their permissions ({text}); "
                "check DSXCONNECTOR_AZURE_* or the identity's role on the container",
                status_code=403,
            )
        if (exc.status_code or 500) >= 500 or exc.status_code in (408, 429):
            return RetryableError(f"Azure Blob Storage unavailable ({text})", status_code=503)
        return PermanentError(f"Azure refused the request ({text})", status_code=400)

    async def aclose(self) -> None:
        if self.service is not None:
            self.service.close()
            credential = getattr(self.service, "credential", None)
            close = getattr(credential, "close", None)
            if callable(close):
                close()


def _version(value: str | None) -> str | None:
    """A blob's version: its ETag without quotes."""
    return value.strip('"') or None if value else None


def _destination_exists(exc: HttpResponseError) -> bool:
    """A copy refused for its ``If-None-Match: *``: Azure answers 409 ``BlobAlreadyExists``."""
    code = getattr(exc, "error_code", None)
    code = str(getattr(code, "value", code) or "")
    return isinstance(exc, ResourceExistsError) or code in ("BlobAlreadyExists", "TargetConditionNotMet")


def _if_match(version: str | None) -> dict[str, Any]:
    """The SDK's ``If-Match`` keywords for ``version`` (none without one)."""
    return {"etag": f'"{version}"', "match_condition": MatchConditions.IfNotModified} if version else {}


def _first_line(exc: BaseException) -> str:
    """The first line of an SDK exception's message, without URL queries (a SAS) or secrets."""
    text = str(getattr(exc, "message", None) or exc).strip()
    return scrubbed(text.splitlines()[0]) if text else type(exc).__name__


def _register_secrets(s: AzureBlobStorageSettings) -> None:
    """Register the credentials' secret parts with ``shared.redaction`` (no log line shows them):
    the SAS (whole, and its signature as it appears in a URL), the account key, the connection
    string and the key or SAS inside it."""
    values: list[str] = []
    sas = s.azure_sas_token.get_secret_value() if s.azure_sas_token else ""
    key = s.azure_account_key.get_secret_value() if s.azure_account_key else ""
    connection = s.azure_connection_string.get_secret_value() if s.azure_connection_string else ""
    for part in connection.split(";"):
        name, _, value = part.partition("=")
        if name.strip().lower() == "accountkey":
            key = key or value.strip()
            values.append(value.strip())
        elif name.strip().lower() == "sharedaccesssignature":
            values.extend(_sas_secrets(value.strip()))
    values += [connection, key, *_sas_secrets(sas)]
    register_secret(*values)


def _sas_secrets(sas: str) -> list[str]:
    """A SAS token and its signature, decoded and as a URL carries it."""
    sas = sas.strip().lstrip("?")
    if not sas:
        return []
    found = [sas]
    for name, value in parse_qsl(sas, keep_blank_values=True):
        if name.lower() == "sig" and value:
            found += [value, quote(value, safe=""), quote(value, safe="/")]
    return found


def _service(s: AzureBlobStorageSettings) -> BlobServiceClient:
    """The one service client: connection string, account key, SAS, else ``DefaultAzureCredential``."""
    options: dict[str, Any] = {
        "max_single_get_size": SMALL_ITEM_BYTES,
        "max_chunk_get_size": DOWNLOAD_CHUNK_BYTES,
    }
    if s.azure_connection_string:
        return BlobServiceClient.from_connection_string(
            s.azure_connection_string.get_secret_value(), **options
        )
    credential: Any
    if s.azure_account_key:
        key = s.azure_account_key.get_secret_value()
        credential = (
            {"account_name": s.azure_account_name, "account_key": key} if s.azure_account_name else key
        )
    elif s.azure_sas_token:
        credential = AzureSasCredential(s.azure_sas_token.get_secret_value())
    else:
        from azure.identity import DefaultAzureCredential  # environment, workload/managed identity, CLI

        credential = DefaultAzureCredential()
    return BlobServiceClient(s.account_url(), credential=credential, **options)
