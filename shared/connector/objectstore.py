"""The object-store template: S3, Azure Blob and GCS share the action flow and ask for primitives.

``ObjectStoreConnector`` owns ``resolve`` (a key inside the ``bucket/prefix`` asset) and ``act``:

    head (404 first) ─ version differs? ─▶ 412 item_changed, nothing touched
       │
       ├─ delete ─▶ delete(key, version)
       ├─ tag ────▶ tag(key, tags, version)
       └─ move ───▶ move(key, version → quarantine[, tags])
                    default move: a free name ─▶ copy(key, version) [─▶ tag(copy)] ─▶ delete(key, version)
                    Graph moves (and tags) in one PATCH.

A move never overwrites what the quarantine holds: a taken name becomes ``name (1).ext``,
``name (2).ext``… (as Graph names a clash; :func:`numbered`); when all :data:`FREE_NAME_TRIES`
are taken (anyone who can write the quarantine can take them in advance), the copy gets a name
nobody can have made before (:func:`unguessable`). The copy is made only where
:meth:`ObjectStoreConnector.describe` finds nothing, with the store's "only if absent" condition
where it has one (Azure ``If-None-Match: *``, GCS ``ifGenerationMatch=0``; S3's managed copy has
none: a writer racing for the same new name between the check and the copy would be replaced). A
name that already holds a copy of the object's content (a retried move whose delete failed) is
reused, not copied again. A ``movetag`` tags the copy before the original is deleted, so a retry
never finds the original gone while the copy is untagged. An original changed between the copy
and its delete gets the copy this call wrote removed again, only while it is that copy (its
version as the condition), and the move answers 412.

A storage implements the primitives, each guarded by the version when one is given, atomically
where the storage allows (``If-Match``, ``ifGenerationMatch``): a primitive whose storage refused
the precondition raises ``ItemChangedError``. Where a storage has no precondition for a call (S3
and Azure tag writes, emulators that ignore one), the ``head`` just before acting is the check.

What the storages share besides:

- reads (:func:`object_content`): a streamed object's bytes are counted against the size the
  storage named, and the answer carries that size as its Content-Length (``exact``): a stream cut
  short (GCS's reader takes a 416 for the end of the object) raises instead of ending as if
  complete, and the core sees a cut answer, never a shorter object it would scan as the whole;
- tags (:meth:`ObjectStoreConnector.merged_tags`): the verdict's keys win, and the object's other
  keys are dropped, logged, until the set fits the storage's limits (S3 and Azure index tags: 10;
  Azure and GCS metadata: 8 KiB), so an uploader who filled them cannot make tagging fail; an
  object in the quarantine (a move's copy) gets exactly the verdict's tags;
- error messages (:func:`scrubbed`): text taken from an SDK's exception loses every URL's query
  (an Azure SAS, a presigned signature) and whatever :mod:`shared.redaction` masks.
"""

from __future__ import annotations

import abc
import hashlib
import logging
import re
import uuid
from collections.abc import AsyncIterator, Callable, Mapping
from dataclasses import dataclass
from typing import ClassVar, TypeVar

import anyio.to_thread

from shared.connector.base import Connector, ItemContent
from shared.connector.buckets import BucketConnectorSettings, BucketLayout, verdict_tags
from shared.connector.errors import ItemChangedError, check_version
from shared.connector.responses import close_source
from shared.errors import DsxError, NotFoundError, PermanentError, RetryableError
from shared.models import ItemActionType, RequestedAction, StatusResponse
from shared.redaction import redact

log = logging.getLogger(__name__)

BucketSettingsT = TypeVar("BucketSettingsT", bound=BucketConnectorSettings)
T = TypeVar("T")

#: numbered names a move tries in the quarantine before it takes an unguessable one
FREE_NAME_TRIES = 100
#: unguessable names a move tries (each taken only by a copy racing for the same name) before giving up
UNGUESSABLE_TRIES = 3

#: a URL (``scheme://host/path`` or a bare ``/path``) and its query, as an SDK's message quotes it
_URL_QUERY = re.compile(
    r"((?:\b[a-z][a-z0-9+.-]*://[^\s/?#'\"<>]+)(?:/[^\s?#'\"<>]*)?|/[^\s?#'\"<>]*)\?[^\s'\"<>)]+",
    re.IGNORECASE,
)


def scrubbed(text: str) -> str:
    """``text`` (an SDK exception's) as an error message may show it: every URL's query dropped (an
    Azure SAS, a presigned S3 or GCS signature ride in it) and registered secrets masked. Messages
    reach ``/readyz``, action answers stored in results, and logs."""
    return redact(_URL_QUERY.sub(r"\1?***", text))


class DestinationTaken(Exception):
    """A copy the storage refused because its destination exists (its "only if absent" condition)."""


@dataclass(frozen=True, slots=True)
class ObjectInfo:
    """What a move needs to know of an object: its version, and what tells its content."""

    version: str | None
    size: int | None
    #: a content hash the storage keeps and a server-side copy keeps too (S3 ETag, MD5, CRC32C);
    #: None where there is none (then no copy is ever taken for the object's own)
    digest: str | None


def numbered(key: str, n: int) -> str:
    """``a/b/x.pdf`` → ``a/b/x (n).pdf`` (``key`` itself for 0), as Graph names a clash."""
    if n == 0:
        return key
    folder, slash, name = key.rpartition("/")
    stem, dot, ext = name.rpartition(".")
    if not stem:  # ".bashrc" or no extension
        stem, dot, ext = name, "", ""
    return f"{folder}{slash}{stem} ({n}){dot}{ext}"


def unguessable(key: str, source: ObjectInfo) -> str:
    """``a/b/x.pdf`` → ``a/b/x (<digest>-<uuid4>).pdf``: a name nobody can have taken in advance;
    the digest part (of the object's content hash, else version) tells copies of one object apart."""
    seed = source.digest or source.version or ""
    label = f"{hashlib.sha256(seed.encode()).hexdigest()[:12]}-{uuid.uuid4().hex}"
    folder, slash, name = key.rpartition("/")
    stem, dot, ext = name.rpartition(".")
    if not stem:
        stem, dot, ext = name, "", ""
    return f"{folder}{slash}{stem} ({label}){dot}{ext}"


def object_content(
    where: str,
    size: int,
    version: str | None,
    *,
    data: bytes | None = None,
    chunks: AsyncIterator[bytes] | None = None,
) -> ItemContent:
    """What ``read`` answers for an object of ``size`` bytes: ``data`` checked against the size, or
    ``chunks`` counted as they stream (:func:`counted`) and answered with that size as the
    Content-Length (``exact``), so a cut stream is a failed read, never a shorter object."""
    if data is not None:
        if len(data) != size:
            raise RetryableError(
                f"{where}: the storage answered {len(data)} of {size} bytes", status_code=503
            )
        return ItemContent(size=size, data=data, version=version)
    if chunks is None:
        raise ValueError("object_content needs data or chunks")
    return ItemContent(size=size, chunks=counted(chunks, size, where), version=version, exact=True)


async def counted(chunks: AsyncIterator[bytes], size: int, where: str) -> AsyncIterator[bytes]:
    """``chunks``, raising ``RetryableError`` when they end before ``size`` bytes or would go past
    it (nothing past it is yielded); closing this closes ``chunks``."""
    total = 0
    try:
        async for chunk in chunks:
            total += len(chunk)
            if total > size:
                raise RetryableError(
                    f"{where}: the storage answered more than the {size} bytes it named", status_code=503
                )
            yield chunk
        if total != size:
            raise RetryableError(
                f"{where}: the download ended after {total} of {size} bytes", status_code=503
            )
    finally:
        await close_source(chunks)


def tag_bytes(tags: Mapping[str, str]) -> int:
    """The size storages count for metadata: names and values, UTF-8 encoded."""
    return sum(len(k.encode()) + len(v.encode()) for k, v in tags.items())


class ObjectStoreConnector(Connector[BucketSettingsT]):
    """A connector over ``bucket/prefix`` whose actions are copy, delete and tag primitives."""

    #: how messages name an object: ``s3://`` + ``bucket/key``
    scheme: ClassVar[str] = ""
    layout: BucketLayout

    def resolve(self, location: str) -> str:
        return self.layout.key(location)

    def where(self, bucket: str, key: str) -> str:
        return f"{self.scheme}{bucket}/{key}"

    # ---- the primitives (blocking SDKs wrap theirs in ``blocking``) ----------------------------

    @abc.abstractmethod
    async def head(self, bucket: str, key: str) -> str | None:
        """The object's current version; the storage's not-found (or ``NotFoundError``) if missing."""

    @abc.abstractmethod
    async def delete(self, bucket: str, key: str, version: str | None) -> None:
        """Delete the object, only while it has ``version`` when one is given."""

    @abc.abstractmethod
    async def copy(
        self, bucket: str, key: str, version: str | None, dest_bucket: str, dest_key: str
    ) -> str | None:
        """Server-side copy of the object (of ``version`` when given) to ``dest_bucket/dest_key``,
        only while nothing is there (``DestinationTaken`` otherwise, where the storage can tell);
        answers the copy's version."""

    @abc.abstractmethod
    async def describe(self, bucket: str, key: str) -> ObjectInfo | None:
        """The object's version, size and content hash; None when there is no such object."""

    @abc.abstractmethod
    async def tag(self, bucket: str, key: str, tags: dict[str, str], version: str | None) -> str | None:
        """Merge ``tags`` into the object's tags (or metadata); answers the object's new version
        when writing them changed it (Azure metadata), else None."""

    def merged_tags(
        self,
        bucket: str,
        key: str,
        current: Mapping[str, str],
        tags: Mapping[str, str],
        *,
        max_count: int | None = None,
        max_bytes: int | None = None,
    ) -> dict[str, str]:
        """The tags (or metadata) to write: ``tags`` (the verdict's) win, also over keys that differ
        only in case; the object's other keys are kept, in their order, while the set stays within
        ``max_count`` keys and ``max_bytes`` (:func:`tag_bytes`); the rest are dropped, logged. An
        uploader who filled the object's tags must not make tagging (and so a ``movetag``) fail.
        An object in the quarantine (a move's copy, which a copy gave the original's tags) keeps
        exactly ``tags``."""
        where = self.where(bucket, key)
        merged = dict(tags)
        wanted = {k.casefold() for k in tags}
        if self.layout.quarantined(bucket, key):
            replaced = [k for k in current if k not in tags]
            if replaced:
                log.info(
                    "tags of the quarantined copy replaced", extra={"object": where, "dropped": replaced}
                )
            return merged
        dropped: list[str] = []
        for k, v in current.items():
            if k in tags:
                continue
            candidate = {**merged, k: v}
            if (
                k.casefold() in wanted
                or (max_count is not None and len(candidate) > max_count)
                or (max_bytes is not None and tag_bytes(candidate) > max_bytes)
            ):
                dropped.append(k)
            else:
                merged = candidate
        if dropped:
            log.warning(
                "existing tags dropped so that the verdict's fit the storage's limits",
                extra={"object": where, "dropped": dropped},
            )
        return merged

    def same_content(self, source: ObjectInfo, found: ObjectInfo) -> bool:
        """Whether ``found`` (in the quarantine) is a copy of ``source``'s content."""
        return source.digest is not None and (source.digest, source.size) == (found.digest, found.size)

    async def move(
        self,
        bucket: str,
        key: str,
        version: str | None,
        dest_bucket: str,
        dest_key: str,
        tags: dict[str, str] | None = None,
    ) -> str:
        """Move the object (tagging the copy with ``tags`` first); answers the key it now has.
        Default: copy to a free name (or reuse a copy of the same content left there), tag the copy,
        delete the original (guarded); an original replaced meanwhile gets this call's copy removed
        again (412)."""
        source = await self.describe(bucket, key)
        if source is None:
            raise NotFoundError(f"object not found: {self.where(bucket, key)}", status_code=404)
        target, target_version, wrote = await self._place(bucket, key, version, source, dest_bucket, dest_key)
        destination = self.where(dest_bucket, target)
        step = "tagged"
        try:
            if tags is not None:
                target_version = await self.tag(dest_bucket, target, tags, target_version) or target_version
            step = "deleted"
            await self.delete(bucket, key, version)
        except Exception as exc:
            err = self.classify_error(exc)
            if isinstance(err, ItemChangedError) and step == "deleted":
                if wrote:
                    await self._remove_copy(dest_bucket, target, target_version)
                raise err from None
            what = "the copy" if step == "tagged" else "the original"
            message = f"copied to {destination} but {what} could not be {step}: {err.message}"
            raise type(err)(message, status_code=err.status_code) from None
        return target

    async def _place(
        self, bucket: str, key: str, version: str | None, source: ObjectInfo, dest_bucket: str, dest_key: str
    ) -> tuple[str, str | None, bool]:
        """``(key, version, written)`` of the object's copy: a free name copied to, or a copy of the
        same content already there (``written`` False: a retried move whose delete failed)."""
        for n in range(FREE_NAME_TRIES):
            candidate = numbered(dest_key, n)
            found = await self.describe(dest_bucket, candidate)
            if found is not None:
                if self.same_content(source, found):
                    log.info(
                        "copy already in the quarantine, reused",
                        extra={
                            "object": self.where(bucket, key),
                            "destination": self.where(dest_bucket, candidate),
                        },
                    )
                    return candidate, found.version, False
                continue  # an earlier quarantined object: never overwritten
            try:
                return candidate, await self.copy(bucket, key, version, dest_bucket, candidate), True
            except DestinationTaken:
                continue  # taken between the check and the copy
        # every numbered name is taken: whoever can write the quarantine can take them in advance
        # (it lies in the scanned bucket by default), and the malware would then never move
        for _ in range(UNGUESSABLE_TRIES):
            candidate = unguessable(dest_key, source)
            try:
                written = await self.copy(bucket, key, version, dest_bucket, candidate)
            except DestinationTaken:
                continue
            log.warning(
                "every numbered name in the quarantine is taken: copied under an unguessable name",
                extra={"object": self.where(bucket, key), "destination": self.where(dest_bucket, candidate)},
            )
            return candidate, written, True
        raise PermanentError(
            f"no free name for {self.where(dest_bucket, dest_key)} after {FREE_NAME_TRIES + UNGUESSABLE_TRIES} tries"
        )

    async def _remove_copy(self, bucket: str, key: str, version: str | None) -> None:
        """Delete the copy this move wrote, only while it is that copy (``version`` as the condition)."""
        try:
            await self.delete(bucket, key, version)
        except Exception as exc:
            log.warning(
                "copy of a changed original left in the quarantine",
                extra={"destination": self.where(bucket, key), "error": self.classify_error(exc).message},
            )

    def classify_error(self, exc: BaseException) -> DsxError:
        """The framework's mapping (connectors map their SDK's exceptions first), its message
        :func:`scrubbed` when it quotes an exception that is not one of ours."""
        err = super().classify_error(exc)
        if err is not exc:
            err.message = scrubbed(err.message)
            err.args = (err.message,)
        return err

    @staticmethod
    async def blocking(call: Callable[[], T]) -> T:
        """Run a blocking SDK call in a worker thread."""
        return await anyio.to_thread.run_sync(call)

    # ---- the flow ---------------------------------------------------------------------------

    async def act(self, location: str, action: RequestedAction, version: str | None = None) -> StatusResponse:
        key = self.resolve(location)
        bucket = self.layout.asset.bucket
        where = self.where(bucket, key)
        # acting on a missing key would "succeed" on most stores; a changed one is left alone
        check_version(where, version, await self.head(bucket, key))
        if action.type == ItemActionType.DELETE:
            await self.delete(bucket, key, version)
            log.info("object deleted", extra={"object": where})
            return StatusResponse(status="success", message=f"deleted {where}")
        if action.type == ItemActionType.TAG:
            await self.tag(bucket, key, verdict_tags(action), version)
            return StatusResponse(status="success", message=f"tagged {where}{self.tag_note()}")
        dest_bucket, dest_key = self.layout.destination(key, action)
        tags = verdict_tags(action) if action.type == ItemActionType.MOVE_TAG else None
        dest_key = await self.move(bucket, key, version, dest_bucket, dest_key, tags)
        destination = self.where(dest_bucket, dest_key)
        log.info("object moved", extra={"object": where, "destination": destination})
        return StatusResponse.model_validate(
            {"status": "success", "message": f"moved to {destination}", "destination": destination}
        )

    def tag_note(self) -> str:
        """Appended to a tag action's message (Azure says whether it wrote tags or metadata)."""
        return ""
