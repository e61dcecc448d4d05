"""The Google Cloud Storage connector: one ``Connector`` subclass over a bucket, or a prefix of it."""

from __future__ import annotations

import base64
import binascii
import json
import logging
from collections.abc import AsyncIterator, Iterator
from contextlib import contextmanager
from typing import Any

import anyio.to_thread
from google.api_core import exceptions as api
from google.auth import exceptions as auth
from google.auth.credentials import AnonymousCredentials
from google.cloud import storage
from google.oauth2 import service_account

from connectors.google_cloud_storage.manifest import MANIFEST
from connectors.google_cloud_storage.pubsub_auth import PubSubPushVerifier
from connectors.google_cloud_storage.settings import GoogleCloudStorageSettings
from connectors.google_cloud_storage.version import __version__
from shared.connector import (
    SMALL_ITEM_BYTES,
    STREAM_CHUNK_BYTES,
    Item,
    ItemContent,
    iterate_in_thread,
)
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

log = logging.getLogger(__name__)

#: the Pub/Sub attribute value of a new (or overwritten) object in a GCS bucket notification
OBJECT_FINALIZE = "OBJECT_FINALIZE"
#: bytes of custom metadata (names and values) an object keeps
MAX_METADATA_BYTES = 8 * 1024


class GoogleCloudStorageConnector(ObjectStoreConnector[GoogleCloudStorageSettings]):
    """Scans the bucket (or ``bucket/prefix``) ``DSXCONNECTOR_ASSET`` on Google Cloud Storage.

    Locations are full object names; the display name is ``bucket/name``. Listing follows the
    SDK's pages (constant memory); reads of objects above 1 MiB stream ``blob.open("rb")`` in
    1 MiB ranged reads pinned to the generation that was looked up. Actions: ``delete``, ``move``
    (rewrite to the quarantine keeping the name, then delete), ``tag`` (custom metadata
    ``Verdict=Malicious``/``ScannedBy=dsx-connect`` merged into the existing), ``movetag``.
    Change monitoring: Pub/Sub push deliveries of bucket notifications (``OBJECT_FINALIZE``)
    posted to ``/webhook/event``, each with its OIDC token verified
    (``connectors.google_cloud_storage.pubsub_auth``).

    Reads are of the stored bytes (``raw_download``: an object stored gzip-encoded is not
    decompressed, so its bytes are the ``size`` GCS names, and ranges apply to them); a stream is
    counted against that size (``shared.connector.objectstore.object_content``): the SDK's reader
    takes a 416 for the end of the object, so a cut download ended as if complete.

    Limits: requester-pays buckets are not supported. An object keeps at most 8 KiB of custom
    metadata: the verdict's keys win, other keys are dropped (logged) until they fit.
    """

    version = __version__
    manifest = MANIFEST

    def __init__(self, settings: GoogleCloudStorageSettings) -> None:
        self.client: Any = None
        super().__init__(settings)

    def configure(self, settings: GoogleCloudStorageSettings) -> None:
        layout = settings.layout()
        if self.client is None:  # one client per connector; asset changes reuse it
            self.client = _client(settings)
        super().configure(settings)
        self.layout: BucketLayout = layout
        self.bucket = self.client.bucket(layout.asset.bucket)
        layout.warn_if_quarantine_in_asset()

    # ---- enumeration -----------------------------------------------------------------------

    def enumerate(self) -> AsyncIterator[Item]:
        return iterate_in_thread(self._walk())

    def _walk(self) -> Iterator[Item]:
        for blob in self._list(page_size=self.settings.gcs_list_page_size):
            version = str(blob.generation) if blob.generation else None  # as _download answers it
            item = self.layout.item(blob.name, blob.size, self.filter, version=version)
            if item is not None:
                yield item

    def _list(self, **options: Any) -> Iterator[storage.Blob]:
        asset = self.layout.asset
        try:
            yield from self.client.list_blobs(asset.bucket, prefix=asset.prefix or None, **options)
        except api.NotFound as exc:  # listing a prefix never 404s: the bucket is missing
            raise NotFoundError(f"bucket {asset.bucket!r} does not exist ({_short(exc)})") from None

    async def check(self) -> None:
        await anyio.to_thread.run_sync(lambda: list(self._list(max_results=1)))

    # ---- read and act ----------------------------------------------------------------------

    async def read(self, location: str) -> ItemContent:
        return await anyio.to_thread.run_sync(self._download, self.resolve(location))

    def _blob(self, key: str) -> storage.Blob:
        blob = self.bucket.get_blob(key)
        if blob is None:
            raise NotFoundError(f"object not found: {self.layout.asset.bucket}/{key}")
        return blob

    def _download(self, key: str) -> ItemContent:
        blob = self._blob(key)
        version, where = str(blob.generation), self.where(self.layout.asset.bucket, key)
        if blob.size <= SMALL_ITEM_BYTES:
            data = blob.download_as_bytes(if_generation_match=blob.generation, raw_download=True)
            return object_content(where, blob.size, version, data=data)
        return object_content(
            where, blob.size, version, chunks=iterate_in_thread(_stream(blob), chunk_size=1)
        )

    # ---- the object-store primitives (shared.connector.objectstore) --------------------------

    async def head(self, bucket: str, key: str) -> str | None:
        blob = await self.blocking(lambda: self.client.bucket(bucket).get_blob(key))
        if blob is None:
            raise NotFoundError(f"object not found: {bucket}/{key}")
        return str(blob.generation)

    async def delete(self, bucket: str, key: str, version: str | None) -> None:
        await self.blocking(lambda: self._delete(bucket, key, version))

    def _delete(self, bucket: str, key: str, version: str | None) -> None:
        # GCS refuses a stale ifGenerationMatch; gcp-storage-emulator ignores it (on the emulator the
        # head just before acting is the only check)
        with _changed(key):
            self.client.bucket(bucket).blob(key).delete(if_generation_match=_generation(version))

    async def describe(self, bucket: str, key: str) -> ObjectInfo | None:
        blob = await self.blocking(lambda: self.client.bucket(bucket).get_blob(key))
        if blob is None:
            return None
        # a rewrite keeps both hashes; composite objects have no MD5, every object a CRC32C
        digest = f"md5:{blob.md5_hash}" if blob.md5_hash else f"crc32c:{blob.crc32c}" if blob.crc32c else None
        return ObjectInfo(str(blob.generation), blob.size, digest)

    async def copy(
        self, bucket: str, key: str, version: str | None, dest_bucket: str, dest_key: str
    ) -> str | None:
        return await self.blocking(lambda: self._copy(bucket, key, version, dest_bucket, dest_key))

    def _copy(
        self, bucket: str, key: str, version: str | None, dest_bucket: str, dest_key: str
    ) -> str | None:
        source = self.client.bucket(bucket).blob(key)
        target = self.client.bucket(dest_bucket).blob(dest_key)
        # ifGenerationMatch=0: only while no object has the destination's name (gcp-storage-emulator
        # ignores it: there the move's check for a free name just before is the guard)
        guard = {"if_source_generation_match": _generation(version), "if_generation_match": 0}
        try:
            token, _, _ = target.rewrite(source, **guard)
            while token is not None:  # large objects are rewritten in several calls
                token, _, _ = target.rewrite(source, token=token, **guard)
        except api.PreconditionFailed:
            if self.client.bucket(dest_bucket).get_blob(dest_key) is not None:
                raise DestinationTaken(dest_key) from None
            raise ItemChangedError(f"object changed since it was scanned: {key!r}") from None
        return str(target.generation) if target.generation else None

    async def tag(self, bucket: str, key: str, tags: dict[str, str], version: str | None) -> None:
        await self.blocking(lambda: self._tag(bucket, key, tags, version))

    def _tag(self, bucket: str, key: str, tags: dict[str, str], version: str | None) -> None:
        blob = self.client.bucket(bucket).get_blob(key)
        if blob is None:
            raise NotFoundError(f"object not found: {bucket}/{key}")
        current = {k: v for k, v in (blob.metadata or {}).items() if v is not None}
        merged = self.merged_tags(bucket, key, current, tags, max_bytes=MAX_METADATA_BYTES)
        # a patch merges metadata: a key dropped is sent as null, which removes it
        blob.metadata = {**dict.fromkeys(k for k in current if k not in merged), **merged}
        with _changed(key):
            blob.patch(if_generation_match=_generation(version))

    # ---- change notifications --------------------------------------------------------------

    def webhook_verifier(self) -> PubSubPushVerifier:
        s = self.settings
        return PubSubPushVerifier(
            audience=s.gcs_push_audience,
            service_accounts=s.gcs_push_service_accounts,
            jwks_url=s.gcs_push_jwks_url,
        )

    async def webhook(self, event: dict[str, Any]) -> list[Item]:
        """A Pub/Sub push delivery: ``message.attributes.eventType`` and the object JSON in ``message.data``."""
        message = event.get("message")
        if not isinstance(message, dict):
            raise PermanentError("not a Pub/Sub push delivery: 'message' is missing")
        attributes = message.get("attributes") or {}
        if not isinstance(attributes, dict):
            raise PermanentError("message.attributes is not an object")
        if attributes.get("eventType") != OBJECT_FINALIZE:
            return []  # deletes, metadata updates, archive events
        data = message.get("data")
        try:
            payload = json.loads(base64.b64decode(data, validate=True)) if data else {}
        except (binascii.Error, ValueError, TypeError):
            raise PermanentError("message.data is not base64-encoded JSON") from None
        if not isinstance(payload, dict):
            raise PermanentError("message.data is not a JSON object (the object's metadata)")
        bucket = str(payload.get("bucket") or attributes.get("bucketId", ""))
        name = str(payload.get("name") or attributes.get("objectId", ""))
        size = int(payload["size"]) if str(payload.get("size", "")).isdigit() else None
        generation = str(payload.get("generation") or attributes.get("objectGeneration") or "")
        item = self.layout.item(name, size, self.filter, bucket, generation if generation.isdigit() else None)
        return [item] if item is not None else []

    # ---- errors and shutdown ---------------------------------------------------------------

    def classify_error(self, exc: BaseException) -> DsxError:
        if isinstance(exc, api.NotFound):
            return NotFoundError(f"not found ({_short(exc)})", status_code=404)
        if isinstance(exc, auth.RefreshError | auth.DefaultCredentialsError | api.Unauthorized):
            return PermanentError(
                f"Google refused the credentials ({_short(exc)}); check DSXCONNECTOR_GCS_CREDENTIALS_FILE "
                "or the Application Default Credentials",
                status_code=403,
            )
        if isinstance(exc, api.Forbidden):
            bucket = self.layout.asset.bucket
            return PermanentError(f"access denied to bucket {bucket!r} ({_short(exc)})", status_code=403)
        if isinstance(exc, api.ServerError | api.TooManyRequests | auth.TransportError | api.RetryError):
            return RetryableError(f"Google Cloud Storage unavailable ({_short(exc)})", status_code=503)
        if isinstance(exc, api.PreconditionFailed):
            return RetryableError(f"object changed while it was read ({_short(exc)})", status_code=503)
        if isinstance(exc, api.ClientError):
            return PermanentError(
                f"Google Cloud Storage refused the request ({_short(exc)})", status_code=400
            )
        if type(exc).__module__.startswith(("requests", "urllib3")):
            return RetryableError(f"Google Cloud Storage unreachable: {scrubbed(str(exc))}", status_code=503)
        return super().classify_error(exc)

    async def aclose(self) -> None:
        if self.client is not None:
            self.client.close()


def _short(exc: BaseException) -> str:
    """An SDK exception's first line, without URL queries (a signed URL's signature) or secrets."""
    return scrubbed(str(exc).splitlines()[0])[:300] if str(exc) else type(exc).__name__


def _generation(version: str | None) -> int | None:
    return int(version) if version and version.isdigit() else None


@contextmanager
def _changed(key: str) -> Iterator[None]:
    """A refused ``ifGenerationMatch`` is an item changed since its scan (not a retryable read race)."""
    try:
        yield
    except api.PreconditionFailed:
        raise ItemChangedError(f"object changed since it was scanned: {key!r}") from None


def _stream(blob: storage.Blob) -> Iterator[bytes]:
    """The object in ``STREAM_CHUNK_BYTES`` ranged reads of the generation looked up."""
    with blob.open(
        "rb", chunk_size=STREAM_CHUNK_BYTES, if_generation_match=blob.generation, raw_download=True
    ) as reader:
        while chunk := reader.read(STREAM_CHUNK_BYTES):
            yield chunk


def _client(s: GoogleCloudStorageSettings) -> storage.Client:
    """The one client: anonymous, a key file, else Application Default Credentials."""
    options = {"api_endpoint": s.gcs_endpoint_url} if s.gcs_endpoint_url else None
    credentials: Any = None
    if s.gcs_anonymous:
        credentials = AnonymousCredentials()
    elif s.gcs_credentials_file:
        try:
            credentials = service_account.Credentials.from_service_account_file(s.gcs_credentials_file)
        except (ValueError, KeyError) as exc:
            raise ValueError(
                f"DSXCONNECTOR_GCS_CREDENTIALS_FILE is not a service-account key: {exc}"
            ) from None
    try:
        return storage.Client(project=s.gcs_project, credentials=credentials, client_options=options)
    except auth.DefaultCredentialsError as exc:
        raise ValueError(
            f"no Google credentials ({exc}): set DSXCONNECTOR_GCS_CREDENTIALS_FILE, "
            "GOOGLE_APPLICATION_CREDENTIALS or run with a service account"
        ) from None
