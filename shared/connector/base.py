"""The connector contract: one subclass per storage, the framework does the rest (STYLE §2).

A connector implements:

- ``enumerate()``: an async generator of :class:`Item` over the asset, honouring the filter,
  in constant memory (follow pagers or walk directories lazily; see ``iterate_in_thread``).
- ``read(location)``: the item's bytes as :class:`ItemContent` (in-memory bytes, a local file,
  or an async byte stream).
- ``act(location, action)``: apply delete / move / tag and answer a ``StatusResponse``.
- ``resolve(location)``: map a location to the storage's own address, refusing escapes with
  ``OutsideAssetError`` (``shared.connector.locations`` has the checks).

and may override ``watch`` (change notifications), ``estimate``, ``repo_check``, ``check``
(asset reachable), ``webhook`` (storage push events), ``configure`` (derived state from
settings) and ``classify_error`` (map a storage SDK's exceptions).

Errors: raise the ``shared.errors`` family (``NotFoundError``, ``OutsideAssetError``,
``PermanentError``, ``RetryableError``) or let the storage's exceptions through; the framework
runs them through ``classify_error`` and answers the matching HTTP status.
"""

from __future__ import annotations

import abc
from collections.abc import AsyncGenerator, AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar, Generic, TypeVar

import anyio

from shared.connector.errors import UnsupportedError, classify_error
from shared.connector.filters import Filter
from shared.connector.settings import ConnectorSettings
from shared.connector.webhook_auth import SharedSecret, WebhookVerifier
from shared.errors import DsxError
from shared.models import (
    ConnectorInstance,
    ConnectorStatus,
    EstimateResponse,
    ItemActionType,
    RequestedAction,
    StatusResponse,
)

if TYPE_CHECKING:
    from connectors.manifest import ConnectorManifest

#: items up to this size are answered from memory by ``read_file``; larger ones are streamed
SMALL_ITEM_BYTES = 1024 * 1024
#: chunk size for streamed items
STREAM_CHUNK_BYTES = 1024 * 1024


@dataclass(frozen=True, slots=True)
class Item:
    """One item of the asset: its location (relative, ``/``-separated), display name and size.

    ``version``, when the listing gives it cheaply, is the item's version in the form ``read``
    answers it (``shared.item_version``): the core's unchanged-object index skips reading and
    scanning an item whose version and scanner identity match what it scanned last time.
    """

    location: str
    metainfo: str
    size: int | None = None
    version: str | None = None


@dataclass(slots=True)
class ItemContent:
    """What ``read`` returns; exactly one of ``data`` or ``chunks`` is set.

    - ``data``: the whole item, already in memory (small items: the fast path).
    - ``chunks``: an async iterator of bytes (a large local file read from the descriptor it was
      versioned from, an object store's download), streamed as it comes.
    """

    size: int | None = None
    data: bytes | None = None
    chunks: AsyncIterator[bytes] | None = None
    #: the version of the bytes answered (``shared.item_version``): sent as ``X-Item-Version``
    version: str | None = None
    #: ``chunks`` give exactly ``size`` bytes: the answer carries a Content-Length (which lets the
    #: scanner take a large item as it arrives instead of spooling it)
    exact: bool = False


@dataclass(slots=True)
class WebhookReply:
    """What ``webhook`` returns when the storage expects an answer of its own.

    A subscription handshake (Event Grid's ``{"validationResponse": code}``, an SNS confirmation)
    answers ``body`` with ``status_code``; ``items``, if any, are submitted for scanning as well
    (with no ``body``, the answer is the usual count of submitted items).
    """

    body: dict[str, Any] | None = None
    status_code: int = 200
    items: list[Item] = field(default_factory=list)
    #: answer this as ``text/plain`` instead of ``body`` (Graph's validation handshake)
    text: str | None = None
    #: run once the core has taken ``items`` (a change feed's cursor moves only then); not run when
    #: the submission fails, so the storage's redelivery finds the same changes again
    after_submit: Callable[[], Awaitable[None]] | None = None


SettingsT = TypeVar("SettingsT", bound=ConnectorSettings)


class ConnectorState:
    """Small values a connector keeps across restarts (cursors such as a Graph delta link).

    This one lives in memory (tests, one-shot CLI runs); the runtime replaces it with one kept
    in the core (``CoreState``, SPEC §4 ``/connectors/state``).
    """

    def __init__(self) -> None:
        self._values: dict[str, str] = {}

    async def get(self, key: str) -> str | None:
        return self._values.get(key)

    async def put(self, key: str, value: str) -> None:
        self._values[key] = value


class Connector(abc.ABC, Generic[SettingsT]):
    """Base class of every connector, generic in its settings class (``Connector[MySettings]``).

    Subclasses set ``version`` and ``manifest`` (the facts declared once: ``connectors.manifest``)
    and implement the abstract methods.
    """

    #: the connector's version, reported on registration and ``GET /version``
    version: ClassVar[str] = "0.0.0"
    #: name, port, prefix, extras and sample data of this connector (``connectors/<pkg>/manifest.py``)
    manifest: ClassVar[ConnectorManifest | None] = None

    def __init__(self, settings: SettingsT) -> None:
        self.settings: SettingsT = settings
        self.filter = Filter()
        self.state: ConnectorState = ConnectorState()
        self.configure(settings)

    # ---- configuration ---------------------------------------------------------------------

    def configure(self, settings: SettingsT) -> None:
        """Adopt ``settings`` (at start and on ``PUT /config``); raise ``ValueError`` to refuse them.

        Overrides compute derived state (a resolved root, a client for a new bucket) and then
        call ``super().configure(settings)``, which swaps the settings in.
        """
        self.filter = settings.parsed_filter()
        self.settings = settings

    @property
    def name(self) -> str:
        return self.settings.name

    @property
    def supported_actions(self) -> frozenset[ItemActionType]:
        return type(self.settings).supported_actions

    def instance(self, status: ConnectorStatus = ConnectorStatus.READY) -> ConnectorInstance:
        """The model this connector registers with the core and embeds in its scan requests."""
        s = self.settings
        return ConnectorInstance(
            name=s.name,
            display_name=s.display_name or None,
            uuid=s.uuid,
            url=s.connector_url,
            status=status,
            item_action=s.item_action,
            item_action_move_metainfo=s.item_action_move_metainfo,
            asset=s.asset,
            asset_display_name=s.asset_display_name or None,
            filter=s.filter,
            version=self.version,
        )

    # ---- the storage contract --------------------------------------------------------------

    @abc.abstractmethod
    def resolve(self, location: str) -> Any:
        """The storage address of ``location``; ``OutsideAssetError`` if it escapes the asset."""

    @abc.abstractmethod
    def enumerate(self) -> AsyncIterator[Item]:
        """Every item of the asset that the filter selects, lazily (an async generator)."""

    @abc.abstractmethod
    async def read(self, location: str) -> ItemContent:
        """The item's content and, where the storage has one, its ``version``; ``NotFoundError``
        (or the storage's not-found) if it is missing."""

    @abc.abstractmethod
    async def act(self, location: str, action: RequestedAction, version: str | None = None) -> StatusResponse:
        """Apply ``action`` (never ``nothing``, always one of ``supported_actions``) to the item.

        With ``version`` (what the core scanned, ``shared.item_version``), act only while the item
        still has it, atomically where the storage allows; else raise ``ItemChangedError`` and
        touch nothing.
        """

    def scan_items(self) -> AsyncIterator[Item]:
        """What a full scan submits. Default: ``enumerate()``; a storage with a change feed (Graph
        delta) may answer only what changed since the previous completed scan."""
        return self.enumerate()

    async def scan_completed(self) -> None:
        """Called when a full scan has submitted every item of ``scan_items`` (not on a limit or cancel)."""
        return None

    async def watch(self, stop: anyio.Event) -> AsyncGenerator[list[Item]]:
        """Yield batches of new or changed items until ``stop`` is set (``MONITOR``).

        The default has nothing to watch; the framework only runs it when overridden.
        """
        raise UnsupportedError(f"{self.name} cannot monitor its asset")
        yield []  # pragma: no cover - makes this an async generator

    #: ``watch`` calls the core (its cursor is kept there): the runtime starts it once registered
    watch_needs_core: ClassVar[bool] = False

    @property
    def can_watch(self) -> bool:
        return type(self).watch is not Connector.watch

    async def check(self) -> None:
        """Raise if the asset is not reachable (``/readyz``, ``/repo_check``). Default: nothing to check."""
        return None

    async def estimate(self) -> EstimateResponse:
        """How many items (and bytes) a full scan would submit. Default: count by enumerating."""
        count = total = 0
        async for item in self.enumerate():
            count += 1
            total += item.size or 0
        return EstimateResponse(count=count, confidence="exact", bytes=total)

    async def repo_check(self, preview: int) -> StatusResponse:
        """Whether the asset is reachable, with up to ``preview`` sample locations."""
        await self.check()
        sample: list[str] = []
        if preview > 0:
            async for item in self.enumerate():
                sample.append(item.location)
                if len(sample) >= preview:
                    break
        return StatusResponse(
            status="success",
            message=f"asset {self.asset_label()!r} is reachable",
            preview=sample,
        )

    def asset_label(self) -> str:
        """How messages name the asset: ``ASSET_DISPLAY_NAME``, else ``ASSET``."""
        return self.settings.asset_display_name or self.settings.asset

    async def webhook(self, event: dict[str, Any]) -> list[Item] | WebhookReply:
        """Items named by a storage push notification (S3 event, Event Grid, Graph…).

        ``event`` is the posted JSON (whatever its Content-Type: SNS posts ``text/plain``); a
        top-level array arrives as ``{"events": [...]}``; a ``validationToken`` query parameter
        (Graph's subscription handshake) arrives as ``{"validationToken": ...}``. Return a
        :class:`WebhookReply` to answer a handshake with the body the storage expects.
        """
        raise UnsupportedError(f"webhook events are not supported by {self.name}", status_code=404)

    @property
    def accepts_webhooks(self) -> bool:
        return type(self).webhook is not Connector.webhook

    def webhook_verifier(self) -> WebhookVerifier:
        """How ``/webhook/event`` proves its sender (``shared.connector.webhook_auth``); storages with a
        native scheme (SNS signature, Pub/Sub OIDC token, Event Grid) override it. Default: the
        shared secret header."""
        return SharedSecret(self.settings.webhook)

    def classify_error(self, exc: BaseException) -> DsxError:
        """Map an exception raised by this connector into the shared error family."""
        return classify_error(exc)

    async def aclose(self) -> None:
        """Release storage clients at shutdown."""
        return None
