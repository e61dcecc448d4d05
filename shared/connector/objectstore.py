"""The object-store template: S3, Azure Blob and GCS share the action flow and ask for primitives.

``ObjectStoreConnector`` owns ``resolve`` (a key inside the ``bucket/prefix`` asset) and ``act``:

    head (404 first) ─ version differs? ─▶ 412 item_changed, nothing touched
       │
       ├─ delete ─▶ delete(key, version)
       ├─ tag ────▶ tag(key, tags, version)
       └─ move ───▶ copy(key, version → quarantine) [─▶ tag(copy)] ─▶ delete(key, version)
                    (the original changed between copy and delete: the copy is removed again, 412)

A storage implements the primitives, each guarded by the version when one is given, atomically
where the storage allows (``If-Match``, ``ifGenerationMatch``): a primitive whose storage refused
the precondition raises ``ItemChangedError``. Where a storage has no precondition for a call (S3
and Azure tag writes, emulators that ignore one), the ``head`` just before acting is the check.
"""

from __future__ import annotations

import abc
import logging
from typing import ClassVar, TypeVar

import anyio.to_thread

from shared.connector.base import Connector
from shared.connector.buckets import BucketConnectorSettings, BucketLayout, verdict_tags
from shared.connector.errors import ItemChangedError, check_version
from shared.models import ItemActionType, RequestedAction, StatusResponse

log = logging.getLogger(__name__)

BucketSettingsT = TypeVar("BucketSettingsT", bound=BucketConnectorSettings)


class ObjectStoreConnector(Connector[BucketSettingsT]):
    """A connector over ``bucket/prefix`` whose actions are copy, delete and tag primitives."""

    #: how messages name an object: ``s3://`` + ``bucket/key``
    scheme: ClassVar[str] = ""
    layout: BucketLayout

    def resolve(self, location: str) -> str:
        return self.layout.key(location)

    def where(self, bucket: str, key: str) -> str:
        return f"{self.scheme}{bucket}/{key}"

    # ---- the primitives (blocking; run in a worker thread) -----------------------------------

    @abc.abstractmethod
    def head(self, bucket: str, key: str) -> str | None:
        """The object's current version; the storage's not-found (or ``NotFoundError``) if missing."""

    @abc.abstractmethod
    def delete(self, bucket: str, key: str, version: str | None) -> None:
        """Delete the object, only while it has ``version`` when one is given."""

    @abc.abstractmethod
    def copy(self, bucket: str, key: str, version: str | None, dest_bucket: str, dest_key: str) -> None:
        """Server-side copy of the object (of ``version`` when given) to ``dest_bucket/dest_key``."""

    @abc.abstractmethod
    def tag(self, bucket: str, key: str, tags: dict[str, str], version: str | None) -> None:
        """Merge ``tags`` into the object's tags (or metadata)."""

    # ---- the flow ---------------------------------------------------------------------------

    async def act(self, location: str, action: RequestedAction, version: str | None = None) -> StatusResponse:
        return await anyio.to_thread.run_sync(self._act, self.resolve(location), action, version)

    def _act(self, key: str, action: RequestedAction, version: str | None) -> StatusResponse:
        bucket = self.layout.asset.bucket
        where = self.where(bucket, key)
        # acting on a missing key would "succeed" on most stores; a changed one is left alone
        check_version(where, version, self.head(bucket, key))
        if action.type == ItemActionType.DELETE:
            self.delete(bucket, key, version)
            log.info("object deleted", extra={"object": where})
            return StatusResponse(status="success", message=f"deleted {where}")
        if action.type == ItemActionType.TAG:
            self.tag(bucket, key, verdict_tags(action), version)
            return StatusResponse(status="success", message=f"tagged {where}{self.tag_note()}")
        dest_bucket, dest_key = self.layout.destination(key, action)
        destination = self.where(dest_bucket, dest_key)
        self.copy(bucket, key, version, dest_bucket, dest_key)
        if action.type == ItemActionType.MOVE_TAG:
            self.tag(dest_bucket, dest_key, verdict_tags(action), None)
        try:
            self.delete(bucket, key, version)
        except Exception as exc:
            err = self.classify_error(exc)
            if isinstance(err, ItemChangedError):  # replaced between copy and delete: undo the copy
                self.delete(dest_bucket, dest_key, None)
                raise err from None
            message = f"copied to {destination} but the original could not be deleted: {err.message}"
            raise type(err)(message, status_code=err.status_code) from None
        log.info("object moved", extra={"object": where, "destination": destination})
        return StatusResponse.model_validate(
            {"status": "success", "message": f"moved to {destination}", "destination": destination}
        )

    def tag_note(self) -> str:
        """Appended to a tag action's message (Azure says whether it wrote tags or metadata)."""
        return ""
