"""The AWS S3 connector: one ``Connector`` subclass over a bucket, or a prefix of it."""

from __future__ import annotations

import functools
import json
import logging
from collections import OrderedDict
from collections.abc import AsyncIterator, Iterator, Mapping
from contextlib import closing
from datetime import datetime
from typing import Any
from urllib.parse import unquote_plus

import anyio.to_thread
import boto3
import httpx
from botocore.config import Config
from botocore.exceptions import (
    BotoCoreError,
    ClientError,
    CredentialRetrievalError,
    NoCredentialsError,
    PartialCredentialsError,
)
from botocore.response import StreamingBody

from connectors.aws_s3.manifest import MANIFEST
from connectors.aws_s3.settings import AwsS3Settings
from connectors.aws_s3.sns import SnsVerifier, trusted_subscribe_url
from connectors.aws_s3.version import __version__
from shared.connector import (
    SMALL_ITEM_BYTES,
    STREAM_CHUNK_BYTES,
    Item,
    ItemContent,
    WebhookReply,
    iterate_in_thread,
)
from shared.connector.buckets import BucketLayout
from shared.connector.errors import ItemChangedError
from shared.connector.objectstore import ObjectInfo, ObjectStoreConnector, object_content, scrubbed
from shared.errors import DsxError, NotFoundError, PermanentError, RetryableError
from shared.redaction import register_secret

log = logging.getLogger(__name__)

#: tags S3 keeps on one object
MAX_TAGS = 10
#: GetBucketVersioning answers that leave the bucket's versioning unknown (a policy without
#: s3:GetBucketVersioning, an S3-compatible store without the call)
VERSIONING_UNKNOWN = frozenset({"AccessDenied", "NotImplemented", "MethodNotAllowed"})

#: SNS MessageIds remembered as submitted: more than an hour of notifications at a busy bucket's rate
_KEEP_MESSAGE_IDS = 10_000

#: error codes S3 answers when the credentials themselves are wrong, expired or for another region
CREDENTIAL_ERRORS = frozenset(
    {
        "InvalidAccessKeyId",
        "SignatureDoesNotMatch",
        "ExpiredToken",
        "InvalidToken",
        "TokenRefreshRequired",
        "InvalidClientTokenId",
        "AuthorizationHeaderMalformed",
    }
)


class AwsS3Connector(ObjectStoreConnector[AwsS3Settings]):
    """Scans the bucket (or ``bucket/prefix``) ``DSXCONNECTOR_ASSET`` on S3 or an S3-compatible store.

    Locations are full object keys; the display name is ``bucket/key``. Listing follows
    ``ListObjectsV2`` pages (constant memory); reads stream ``GetObject`` bodies in 1 MiB chunks.
    Actions: ``delete``, ``move`` (copy to the quarantine keeping the key, then delete),
    ``tag`` (object tags ``Verdict=Malicious``, ``ScannedBy=dsx-connect`` merged into the existing
    ones; a request's ``tags`` override them), ``movetag``. Change monitoring: S3 event
    notifications posted to ``/webhook/event`` in an SNS envelope whose signature, certificate
    URL and topic are verified (``connectors.aws_s3.sns``; subscriptions are confirmed only on
    ``https://sns.<region>.amazonaws.com``).

    Versions (``X-Item-Version``, the scan cache's key, the guard of actions): ``ETag;mtime=<epoch
    seconds of LastModified>``, or ``ETag;vid=<VersionId>`` in a versioned bucket (listed with
    ``ListObjectVersions`` there), the same from list, head, get and a notification. The ETag alone
    is the MD5 of a single-part object's bytes: two different files made to collide kept one version,
    and the scan cache served the first one's verdict for the second. Guards send the ETag part
    (``If-Match``, ``CopySourceIfMatch``); the head just before acting compares the whole version.

    Limits: S3 keeps at most 10 tags per object (the verdict's win, other keys are dropped, logged);
    a move of an object above 5 GiB uses a multipart copy, which does not carry the source's tags.
    """

    version = __version__
    manifest = MANIFEST
    scheme = "s3://"

    def __init__(self, settings: AwsS3Settings, *, http: httpx.AsyncBaseTransport | None = None) -> None:
        self._http = http  # the network for SNS confirmations (tests inject one)
        self.s3: Any = None
        #: MessageIds of notifications whose items the core took (dropped when delivered again)
        self._submitted_messages: OrderedDict[str, None] = OrderedDict()
        super().__init__(settings)

    def configure(self, settings: AwsS3Settings) -> None:
        layout = settings.layout()
        for secret in (settings.aws_secret_access_key, settings.aws_session_token):
            register_secret(secret.get_secret_value() if secret else None)  # never in a log line
        if self.s3 is None:  # one client per connector; asset changes reuse it
            self.s3 = _client(settings)
        super().configure(settings)
        self.layout: BucketLayout = layout
        layout.warn_if_quarantine_in_asset()

    # ---- enumeration -----------------------------------------------------------------------

    def enumerate(self) -> AsyncIterator[Item]:
        return iterate_in_thread(self._walk())

    def _walk(self) -> Iterator[Item]:
        asset, selected = self.layout.asset, self.filter
        versioned = self._versioned(asset.bucket)
        paging = {"Bucket": asset.bucket, "Prefix": asset.prefix}
        config = {"PageSize": self.settings.aws_list_page_size}
        if versioned:  # ListObjectsV2 gives no VersionId: the current versions, from all of them
            pages = self.s3.get_paginator("list_object_versions").paginate(**paging, PaginationConfig=config)
            objects = (obj for page in pages for obj in page.get("Versions", ()) if obj.get("IsLatest"))
        else:
            pages = self.s3.get_paginator("list_objects_v2").paginate(**paging, PaginationConfig=config)
            objects = (obj for page in pages for obj in page.get("Contents", ()))
        for obj in objects:
            # versioning unknown (no s3:GetBucketVersioning): no version, the read gives it
            version = object_version(obj) if versioned is not None else None
            item = self.layout.item(obj["Key"], obj.get("Size"), selected, version=version)
            if item is not None:
                yield item

    def _versioned(self, bucket: str) -> bool | None:
        """Whether the bucket keeps versions (enabled or suspended: objects may have a VersionId);
        None when the credentials may not ask (then listings carry no version)."""
        try:
            status = self.s3.get_bucket_versioning(Bucket=bucket).get("Status")
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") not in VERSIONING_UNKNOWN:
                raise
            log.warning(
                "bucket versioning unknown (s3:GetBucketVersioning denied or not implemented): listed "
                "objects carry no version, so a rescan reads every object",
                extra={"bucket": bucket, "error": self.classify_error(exc).message},
            )
            return None
        return status in ("Enabled", "Suspended")

    async def check(self) -> None:
        asset = self.layout.asset
        await anyio.to_thread.run_sync(
            lambda: self.s3.list_objects_v2(Bucket=asset.bucket, Prefix=asset.prefix, MaxKeys=1)
        )

    # ---- read and act ----------------------------------------------------------------------

    async def read(self, location: str) -> ItemContent:
        return await anyio.to_thread.run_sync(self._get, self.resolve(location))

    def _get(self, key: str) -> ItemContent:
        bucket = self.layout.asset.bucket
        response = self.s3.get_object(Bucket=bucket, Key=key)
        body: StreamingBody = response["Body"]
        size, version, where = response["ContentLength"], object_version(response), self.where(bucket, key)
        if size <= SMALL_ITEM_BYTES:
            with closing(body):
                return object_content(where, size, version, data=body.read())
        return object_content(where, size, version, chunks=iterate_in_thread(_stream(body), chunk_size=1))

    # ---- the object-store primitives (shared.connector.objectstore) --------------------------

    async def head(self, bucket: str, key: str) -> str | None:
        return object_version(await self.blocking(lambda: self.s3.head_object(Bucket=bucket, Key=key)))

    async def delete(self, bucket: str, key: str, version: str | None) -> None:
        tag = version_etag(version)
        guard = {"IfMatch": f'"{tag}"'} if tag else {}  # S3 conditional delete (moto honours it)
        await self.blocking(lambda: self.s3.delete_object(Bucket=bucket, Key=key, **guard))

    async def describe(self, bucket: str, key: str) -> ObjectInfo | None:
        try:
            found = await self.blocking(lambda: self.s3.head_object(Bucket=bucket, Key=key))
        except ClientError as exc:
            if isinstance(self.classify_error(exc), NotFoundError):
                return None
            raise
        # a copy in one CopyObject keeps the ETag (the MD5 of single-part objects)
        return ObjectInfo(object_version(found), found.get("ContentLength"), etag(found))

    async def copy(
        self, bucket: str, key: str, version: str | None, dest_bucket: str, dest_key: str
    ) -> str | None:
        # CopySourceIfMatch: S3 refuses a changed source (moto refuses it in the managed copy's HeadObject);
        # the managed copy goes multipart above 8 MiB and takes no IfNoneMatch: the move's check for
        # a free name just before is the only guard of the destination
        tag = version_etag(version)
        extra = {"CopySourceIfMatch": f'"{tag}"'} if tag else None
        source = {"Bucket": bucket, "Key": key}
        await self.blocking(lambda: self.s3.copy(source, dest_bucket, dest_key, ExtraArgs=extra))
        return object_version(
            await self.blocking(lambda: self.s3.head_object(Bucket=dest_bucket, Key=dest_key))
        )

    async def tag(self, bucket: str, key: str, tags: dict[str, str], version: str | None) -> None:
        await self.blocking(lambda: self._tag(bucket, key, tags))

    def _tag(self, bucket: str, key: str, tags: dict[str, str]) -> None:
        # PutObjectTagging has no precondition: the head just before acting is the check
        current = self.s3.get_object_tagging(Bucket=bucket, Key=key)["TagSet"]
        existing = {tag["Key"]: tag["Value"] for tag in current}
        merged = self.merged_tags(bucket, key, existing, tags, max_count=MAX_TAGS)
        tag_set = [{"Key": k, "Value": v} for k, v in merged.items()]
        self.s3.put_object_tagging(Bucket=bucket, Key=key, Tagging={"TagSet": tag_set})

    # ---- change notifications --------------------------------------------------------------

    def webhook_verifier(self) -> SnsVerifier:
        s = self.settings
        return SnsVerifier(s.aws_sns_topic_arns, url_pattern=s.aws_sns_url_pattern, transport=self._http)

    async def webhook(self, event: dict[str, Any]) -> list[Item] | WebhookReply:
        """S3 event notifications: ``{"Records": [...]}``, or an SNS envelope around one."""
        kind = event.get("Type")
        if kind == "SubscriptionConfirmation":
            return await self._confirm(event)
        if kind == "UnsubscribeConfirmation":
            return WebhookReply({"status": "nothing", "message": "SNS unsubscribe noted"})
        message_id = None
        if kind == "Notification":
            message_id = str(event.get("MessageId", ""))
            if message_id in self._submitted_messages:  # SNS delivers at least once; a replay, too
                return WebhookReply({"status": "nothing", "message": "SNS message already submitted"})
            try:
                event = json.loads(event.get("Message") or "{}")
            except ValueError:
                raise PermanentError("SNS Message is not an S3 event (JSON expected)") from None
        items = self._created_items(event)
        if message_id is None:
            return items
        return WebhookReply(items=items, after_submit=functools.partial(self._submitted, message_id))

    def _created_items(self, event: Any) -> list[Item]:
        records = event.get("Records") if isinstance(event, dict) else None
        items = []
        for record in records if isinstance(records, list) else ():
            if not isinstance(record, dict) or not str(record.get("eventName", "")).startswith(
                ("ObjectCreated:", "s3:ObjectCreated:")
            ):
                continue
            s3 = record.get("s3")
            obj = s3.get("object") if isinstance(s3, dict) else None
            bucket = s3.get("bucket") if isinstance(s3, dict) else None
            if not isinstance(obj, dict) or not isinstance(bucket, dict):
                raise PermanentError("S3 event record without an 's3' object and bucket")
            key = unquote_plus(str(obj.get("key", "")))  # S3 sends keys URL-encoded, spaces as "+"
            # the version as read answers it, where the event has it: a redelivery (SNS, at least
            # once) names the same request. S3 events carry no LastModified: in an unversioned bucket
            # the read supplies the version (eventTime is not the object's LastModified)
            version = object_version({"ETag": obj.get("eTag"), "VersionId": obj.get("versionId")})
            item = self.layout.item(key, obj.get("size"), self.filter, str(bucket.get("name", "")), version)
            if item is not None:
                items.append(item)
        return items

    async def _submitted(self, message_id: str) -> None:
        self._submitted_messages[message_id] = None
        while len(self._submitted_messages) > _KEEP_MESSAGE_IDS:
            self._submitted_messages.popitem(last=False)

    async def _confirm(self, event: dict[str, Any]) -> WebhookReply:
        url, topic = str(event.get("SubscribeURL", "")), event.get("TopicArn")
        if not trusted_subscribe_url(url, self.settings.aws_sns_url_pattern):
            raise PermanentError(
                f"SNS SubscribeURL refused: only https://sns.<region>.amazonaws.com/ is fetched, got {url[:200]!r}"
            )
        if not self.settings.aws_sns_auto_confirm:
            message = "SNS subscription left unconfirmed (DSXCONNECTOR_AWS_SNS_AUTO_CONFIRM=false)"
            return WebhookReply({"status": "nothing", "message": message, "topic_arn": topic})
        async with httpx.AsyncClient(transport=self._http, timeout=10.0, follow_redirects=False) as http:
            try:
                answer = await http.get(url)
            except httpx.HTTPError as exc:
                raise RetryableError(
                    f"SNS subscription confirmation failed: {exc!r}", status_code=502
                ) from None
        if answer.status_code != 200:
            raise RetryableError(f"SNS answered {answer.status_code} to the confirmation", status_code=502)
        log.info("SNS subscription confirmed", extra={"topic_arn": topic})
        return WebhookReply(
            {"status": "success", "message": "SNS subscription confirmed", "topic_arn": topic}
        )

    # ---- errors and shutdown ---------------------------------------------------------------

    def classify_error(self, exc: BaseException) -> DsxError:
        if isinstance(exc, ClientError):
            error, meta = exc.response.get("Error", {}), exc.response.get("ResponseMetadata", {})
            code, status = str(error.get("Code", "")), int(meta.get("HTTPStatusCode") or 0)
            text = scrubbed(f"{code}: {error.get('Message') or exc}")
            bucket = error.get("BucketName") or self.layout.asset.bucket
            if code == "NoSuchBucket":
                return NotFoundError(f"bucket {bucket!r} does not exist ({text})", status_code=404)
            if code == "PreconditionFailed" or status == 412:
                return ItemChangedError(f"object changed since it was scanned ({text})")
            if code in ("NoSuchKey", "404", "NotFound"):
                return NotFoundError(f"object not found ({text})", status_code=404)
            if code in CREDENTIAL_ERRORS:
                return PermanentError(
                    f"S3 refused the credentials ({text}); check DSXCONNECTOR_AWS_* or the AWS credential chain",
                    status_code=403,
                )
            if status == 403 or code == "AccessDenied":
                return PermanentError(f"access denied to bucket {bucket!r} ({text})", status_code=403)
            if status >= 500 or status in (408, 429) or code in ("SlowDown", "RequestTimeout"):
                return RetryableError(f"S3 unavailable ({text})", status_code=503)
            return PermanentError(f"S3 refused the request ({text})", status_code=400)
        if isinstance(exc, NoCredentialsError | PartialCredentialsError | CredentialRetrievalError):
            return PermanentError(
                f"no usable AWS credentials ({scrubbed(str(exc))}): set DSXCONNECTOR_AWS_ACCESS_KEY_ID and "
                "DSXCONNECTOR_AWS_SECRET_ACCESS_KEY, AWS_PROFILE, or run with an IAM role",
                status_code=403,
            )
        if isinstance(exc, BotoCoreError):  # connection errors, timeouts, broken streams
            return RetryableError(f"S3 unreachable: {scrubbed(str(exc))}", status_code=503)
        return super().classify_error(exc)

    async def aclose(self) -> None:
        if self.s3 is not None:
            self.s3.close()


def _client(s: AwsS3Settings) -> Any:
    """The one S3 client: explicit keys or profile if set, else the SDK's credential chain."""
    session = boto3.session.Session(
        aws_access_key_id=s.aws_access_key_id,
        aws_secret_access_key=s.aws_secret_access_key.get_secret_value() if s.aws_secret_access_key else None,
        aws_session_token=s.aws_session_token.get_secret_value() if s.aws_session_token else None,
        region_name=s.aws_region,
        profile_name=s.aws_profile,
    )
    config = Config(
        max_pool_connections=s.aws_max_pool_connections,
        retries={"mode": "standard"},
        s3={"addressing_style": s.aws_addressing_style},
        connect_timeout=10,
        read_timeout=60,
    )
    return session.client("s3", endpoint_url=s.aws_endpoint_url, verify=s.aws_verify_tls, config=config)


def etag(response: Mapping[str, Any]) -> str | None:
    """The object's ETag without quotes."""
    value = response.get("ETag")
    return str(value).strip('"') or None if value else None


def object_version(response: Mapping[str, Any]) -> str | None:
    """The object's version from a listing entry, a head or get answer or an event record:
    ``ETag;vid=<VersionId>`` when it has a VersionId (a versioned bucket), else
    ``ETag;mtime=<LastModified, whole seconds since the epoch>`` (list and head agree to the second);
    None without an ETag, or without either (an event of an unversioned bucket)."""
    tag = etag(response)
    if not tag:
        return None
    version_id = response.get("VersionId")
    if version_id and version_id != "null":  # "null": written while versioning was off or suspended
        return f"{tag};vid={version_id}"
    modified = response.get("LastModified")
    if isinstance(modified, datetime):
        return f"{tag};mtime={int(modified.timestamp())}"
    return None


def version_etag(version: str | None) -> str | None:
    """The ETag part of a version (what ``If-Match`` guards compare)."""
    return version.partition(";")[0] or None if version else None


def _stream(body: StreamingBody) -> Iterator[bytes]:
    """The body in ``STREAM_CHUNK_BYTES`` chunks; the connection is released when it ends or is closed."""
    with closing(body):
        yield from body.iter_chunks(STREAM_CHUNK_BYTES)
