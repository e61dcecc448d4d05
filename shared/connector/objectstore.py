"""The object-store template: S3, Azure Blob and GCS share the action flow and ask for primitives.

``ObjectStoreConnector`` owns ``resolve`` (a key inside the ``bucket/prefix`` asset) and ``act``:

    head (404 first) ─ version differs? ─▶ 412 item_changed, nothing touched
       │
       ├─ delete ─▶ delete(key, version)
       ├─ tag ────▶ tag(key, tags, version)
       └─ move ───▶ move(key, version → quarantine) [─▶ tag(moved)]
                    default move: copy(key, version) ─▶ delete(key, version); an original changed
                    between the two gets the copy removed again (412). Graph moves in one PATCH.

A storage implements the primitives, each guarded by the version when one is given, atomically
where the storage allows (``If-Match``, ``ifGenerationMatch``): a primitive whose storage refused
the precondition raises ``ItemChangedError``. Where a storage has no precondition for a call (S3
and Azure tag writes, emulators that ignore one), the ``head`` just before acting is the check.
"""

from __future__ import annotations

import abc
import logging
from collections.abc import Callable
from typing import ClassVar, TypeVar

import anyio.to_thread

from shared.connector.base import Connector
from shared.connector.buckets import BucketConnectorSettings, BucketLayout, verdict_tags
from shared.connector.errors import ItemChangedError, check_version
from shared.models import ItemActionType, RequestedAction, StatusResponse

log = logging.getLogger(__name__)

BucketSettingsT = TypeVar("BucketSettingsT", bound=BucketConnectorSettings)
T = TypeVar("T")


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
    async def copy(self, bucket: str, key: str, version: str | None, dest_bucket: str, dest_key: str) -> None:
        """Server-side copy of the object (of ``version`` when given) to ``dest_bucket/dest_key``."""

    @abc.abstractmethod
    async def tag(self, bucket: str, key: str, tags: dict[str, str], version: str | None) -> None:
        """Merge ``tags`` into the object's tags (or metadata)."""

    async def move(self, bucket: str, key: str, version: str | None, dest_bucket: str, dest_key: str) -> str:
        """Move the object; answers the key it now has. Default: copy, then delete the original
        (guarded); an original replaced between the two gets the copy removed again (412)."""
        destination = self.where(dest_bucket, dest_key)
        await self.copy(bucket, key, version, dest_bucket, dest_key)
        try:
            await self.delete(bucket, key, version)
        except Exception as exc:
            err = self.classify_error(exc)
            if isinstance(err, ItemChangedError):
                await self.delete(dest_bucket, dest_key, None)
                raise err from None
            message = f"copied to {destination} but the original could not be deleted: {err.message}"
            raise type(err)(message, status_code=err.status_code) from None
        return dest_key

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
        dest_key = await self.move(bucket, key, version, dest_bucket, dest_key)
        destination = self.where(dest_bucket, dest_key)
        if action.type == ItemActionType.MOVE_TAG:
            await self.tag(dest_bucket, dest_key, verdict_tags(action), None)
        log.info("object moved", extra={"object": where, "destination": destination})
        return StatusResponse.model_validate(
            {"status": "success", "message": f"moved to {destination}", "destination": destination}
        )

    def tag_note(self) -> str:
        """Appended to a tag action's message (Azure says whether it wrote tags or metadata)."""
        return ""
