"""What object-store connectors (S3, Azure Blob, GCS) share: a ``bucket/prefix`` asset and its quarantine.

Locations are full object keys, as in DSX-Connect 1.x (``incoming/docs/a.pdf`` for the asset
``my-bucket/incoming``); the display name (``metainfo``) is ``bucket/key``. The filter applies
to the key relative to the prefix. A key is inside the asset when it starts with the prefix and
passes ``relative_location`` (no ``..`` segment, not absolute, no control character); in S3
(``literal_keys``) backslashes and control characters are parts of a name and pass too. A key in
the quarantine is never read, listed or submitted. A key of the asset that ``read_file`` refuses
for its form is still listed and submitted, logged: its result is a Not Scanned naming why, where
skipping it let anyone who can upload keep malware from the scan in silence.

The quarantine is ``ITEM_ACTION_MOVE_METAINFO``, a key prefix in the asset's bucket (1.x), or in
the storage's own quarantine bucket/container setting when one is given. A move keeps the whole
key below it: ``incoming/docs/a.pdf`` becomes ``dsxconnect-quarantine/incoming/docs/a.pdf``
(``a (1).pdf``, ``a (2).pdf``… when that name is taken: ``shared.connector.objectstore``).
A quarantine inside the asset (the default) is writable by whoever can upload to the asset and
never scanned: the connectors log a warning at configure time (:meth:`BucketLayout.warn_if_quarantine_in_asset`);
a separate quarantine bucket or container is the safe setup.

S3 and GCS keys are literal (``./q/x`` is another key than ``q/x``). Azure's and Graph's HTTP
stacks resolve ``.`` segments, so their layouts refuse them (``refused_segments``; Graph, whose
names are never empty, empty segments too): such a location is refused (400) and never listed, or
``./dsxconnect-quarantine/x`` would reach the quarantine. Graph paths ignore case, so its layout
also finds the quarantine ``casefold``.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from pydantic import field_validator

from shared.connector.base import Item
from shared.connector.filters import Filter
from shared.connector.locations import MAX_LOCATION, relative_location
from shared.connector.settings import ConnectorSettings
from shared.errors import DsxError, OutsideAssetError, PermanentError
from shared.models import RequestedAction

log = logging.getLogger(__name__)

#: tags (or metadata) a ``tag`` action sets unless the request names its own: actions run on
#: the verdicts of ``DSXCONNECT_WORKERS__ACTION_VERDICTS``, ``Malicious`` by default
DEFAULT_TAGS = {"Verdict": "Malicious", "ScannedBy": "dsx-connect"}


def key_prefix(text: str) -> str:
    """``a/b`` → ``a/b/``, ``""`` → ``""``; refuses ``..``, ``.`` and empty segments and control
    characters (ValueError)."""
    text = text.strip().strip("/")
    if not text:
        return ""
    try:
        relative_location(text)
        plain_segments(text, DOT_AND_EMPTY)
    except DsxError as exc:
        raise ValueError(exc.message) from None
    return text + "/"


#: the segments an HTTP stack resolves (``.``) or a path-addressed store collapses (empty)
DOT_AND_EMPTY = frozenset({".", ""})


def plain_segments(location: str, refused: frozenset[str]) -> None:
    """Refuse (``OutsideAssetError``, 400) a location with one of the ``refused`` segments."""
    if refused and any(part in refused for part in location.split("/")):
        raise OutsideAssetError(
            f"location with a '.' or empty segment refused: {location!r}", status_code=400
        )


@dataclass(frozen=True, slots=True)
class BucketAsset:
    """A bucket (container) and a key prefix, ``""`` or ending with ``/``."""

    bucket: str
    prefix: str = ""

    @classmethod
    def parse(cls, asset: str, noun: str = "bucket") -> BucketAsset:
        """``bucket`` or ``bucket/prefix``; ``ValueError`` naming what is wrong."""
        bucket, _, prefix = asset.strip().strip("/").partition("/")
        if not bucket:
            raise ValueError(f"must name the {noun}: '{noun}' or '{noun}/prefix'")
        return cls(bucket, key_prefix(prefix))

    def __str__(self) -> str:
        return f"{self.bucket}/{self.prefix}".rstrip("/")

    def holds(self, key: str) -> bool:
        return key.startswith(self.prefix)


@dataclass(frozen=True, slots=True)
class BucketLayout:
    """The asset, its quarantine, and the checks every object-store connector makes."""

    asset: BucketAsset
    quarantine: BucketAsset | None
    #: segments a location may not have: ``.`` where the store's HTTP stack resolves it (Azure,
    #: Graph), ``""`` where the store collapses it (Graph)
    refused_segments: frozenset[str] = frozenset()
    #: the store's names ignore case (Graph): the quarantine is found in any case
    casefold: bool = False
    #: keys are names, not paths (S3): backslashes and control characters are parts of a name
    #: (percent-encoded in requests), so such an object is read and acted on as it is; only a
    #: ``..`` segment, which a path-style URL could resolve into another bucket, is refused
    literal_keys: bool = False

    @classmethod
    def build(
        cls,
        asset: str,
        move_to: str,
        quarantine_bucket: str | None,
        noun: str = "bucket",
        *,
        refused_segments: frozenset[str] = frozenset(),
        casefold: bool = False,
        literal_keys: bool = False,
    ) -> BucketLayout:
        """Parse the settings; ``ValueError`` if the quarantine is the asset or contains it."""
        parsed = BucketAsset.parse(asset, noun)
        bucket = (quarantine_bucket or "").strip() or parsed.bucket
        prefix = key_prefix(move_to or "")
        quarantine = BucketAsset(bucket, prefix) if prefix or bucket != parsed.bucket else None
        if quarantine and quarantine.bucket == parsed.bucket and parsed.prefix.startswith(quarantine.prefix):
            raise ValueError(
                f"the quarantine {str(quarantine)!r} (ITEM_ACTION_MOVE_METAINFO) cannot be the asset or contain it"
            )
        return cls(parsed, quarantine, refused_segments, casefold, literal_keys)

    @property
    def quarantine_in_asset(self) -> bool:
        """The quarantine is a prefix of the scanned asset (the default: ``dsxconnect-quarantine/``
        in the asset's bucket): whoever can upload to the asset can write there too, and nothing
        put there is ever scanned."""
        q = self.quarantine
        return q is not None and q.bucket == self.asset.bucket and q.prefix.startswith(self.asset.prefix)

    def warn_if_quarantine_in_asset(self, noun: str = "bucket") -> None:
        """Log a warning when :attr:`quarantine_in_asset` (at configure time)."""
        if self.quarantine_in_asset:
            log.warning(
                "the quarantine %r lies inside the scanned asset %r: whoever can upload there can write "
                "into the quarantine (objects put there are never scanned, and names can be taken in "
                "advance); set a separate quarantine %s",
                str(self.quarantine),
                str(self.asset),
                noun,
            )

    def quarantined(self, bucket: str, key: str) -> bool:
        q = self.quarantine
        if q is None or q.bucket != bucket:
            return False
        return key.casefold().startswith(q.prefix.casefold()) if self.casefold else q.holds(key)

    def key(self, location: str) -> str:
        """The object key of ``location``; ``OutsideAssetError`` unless it lies inside the asset."""
        self._checked(location)
        if not self.asset.holds(location):
            raise OutsideAssetError(f"location outside the asset {str(self.asset)!r}: {location!r}")
        if self.quarantined(self.asset.bucket, location):
            raise OutsideAssetError(f"location is in the quarantine: {location!r}")
        return location

    def item(
        self,
        key: str,
        size: int | None,
        selected: Filter,
        bucket: str | None = None,
        version: str | None = None,
    ) -> Item | None:
        """The item a listing or a notification names, or None if the scan must skip it. ``version``:
        what the listing or notification gives in the form ``read`` answers it (the scan cache keys
        on it; a redelivered notification names the same scan request)."""
        bucket = bucket or self.asset.bucket
        if bucket != self.asset.bucket or not self.asset.holds(key) or key.endswith("/"):
            return None  # another bucket, outside the prefix, or a "folder" placeholder
        if self.quarantined(bucket, key) or not selected.matches(key[len(self.asset.prefix) :]):
            return None
        try:
            self._checked(key)
        except DsxError as exc:
            # a key read_file refuses (a request path could resolve it elsewhere) is still submitted:
            # its result is a visible Not Scanned naming why, where skipping it let anyone who can
            # upload keep malware from the scan in silence
            log.warning("object submitted though its key cannot be read: %s", exc.message)
        return Item(key, f"{bucket}/{key}", size, version or None)

    def _checked(self, key: str) -> None:
        """Refuse (``OutsideAssetError``) a key this store's requests could resolve elsewhere."""
        if self.literal_keys:
            if not key or len(key) > MAX_LOCATION or "\x00" in key:
                raise OutsideAssetError(f"object key refused: {key[:200]!r}", status_code=400)
            if ".." in key.split("/"):  # in a path-style URL, a proxy or S3-compatible store resolves it
                raise OutsideAssetError(f"location escapes the asset: {key[:200]!r}")
            return  # backslashes and control characters are percent-encoded in the request path
        relative_location(key)  # refuses "..", absolute keys, control characters
        plain_segments(key, self.refused_segments)

    def destination(self, key: str, action: RequestedAction) -> tuple[str, str]:
        """``(bucket, key)`` a move puts ``key`` to: the quarantine, or the request's destination.

        A requested ``destination.path``/``prefix`` must lie in the quarantine or in the asset;
        ``destination.filename`` replaces the last segment of the key.
        """
        dest = action.destination
        requested = dest and (dest.path or dest.prefix)
        if requested:
            prefix = key_prefix(requested)
            q = self.quarantine
            if q is not None and prefix.startswith(q.prefix):
                target = BucketAsset(q.bucket, prefix)
            elif prefix.startswith(self.asset.prefix):
                target = BucketAsset(self.asset.bucket, prefix)
            else:
                raise OutsideAssetError(f"move destination outside the asset and quarantine: {requested!r}")
        elif self.quarantine is None:
            raise PermanentError("no quarantine configured (DSXCONNECTOR_ITEM_ACTION_MOVE_METAINFO)")
        else:
            target = self.quarantine
        name = key
        if dest and dest.filename:
            filename = str(relative_location(dest.filename))
            if "/" in filename:
                raise PermanentError(f"destination filename must be a plain name: {dest.filename!r}")
            name = key.rpartition("/")[0] + "/" + filename if "/" in key else filename
        if (target.bucket, target.prefix + name) == (self.asset.bucket, key):
            raise PermanentError(f"move destination is the item itself: {key!r}")
        return target.bucket, target.prefix + name


def verdict_tags(action: RequestedAction) -> dict[str, str]:
    """The tags a ``tag``/``movetag`` action sets: :data:`DEFAULT_TAGS` updated by the request's."""
    return {**DEFAULT_TAGS, **action.tags}


def http_url(value: str | None, example: str) -> str | None:
    """A settings value that must be an http(s) URL (trailing slash dropped), or None when empty."""
    value = (value or "").strip().rstrip("/")
    if value and not value.startswith(("http://", "https://")):
        raise ValueError(f"must be an http(s) URL such as {example}")
    return value or None


class BucketConnectorSettings(ConnectorSettings):
    """What every object-store connector's settings share: the quarantine is a key prefix."""

    @field_validator("item_action_move_metainfo")
    @classmethod
    def _quarantine_prefix(cls, value: str) -> str:
        key_prefix(value)
        return value.strip()
