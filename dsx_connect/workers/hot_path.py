"""Stream one item from its connector into the scanner: the throughput-critical path.

Every exchange goes through a ``transport.Transport`` (``DSXCONNECT_SCANNER__CLIENT``): by default
``http1.HttpPool``, chosen by measurement (docs/performance.md: about a fifth of aiohttp's CPU per
request), or the aiohttp adapter. Request building and answer parsing are the shared DSXA protocol
functions (``shared.dsxa.protocol``).
"""

from __future__ import annotations

import json
import ssl
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from functools import cached_property, lru_cache

from dsx_connect.auth.urls import connector_address
from dsx_connect.connector_client import AnswerKind, classify
from dsx_connect.connector_requests import Route, read_file_body, read_files_body, route_url
from dsx_connect.settings import Settings
from dsx_connect.workers.http1 import Target, target
from dsx_connect.workers.outcome import ConnectorRef
from dsx_connect.workers.transport import Answer, Transport
from shared.batch_read import HEADER_BYTES, MAX_ITEM_BYTES, MAX_ITEMS, MEDIA_TYPE, FrameError, iter_frames
from shared.dsxa.protocol import classify_status, custom_metadata, error_reason, parse_verdict, scan_headers
from shared.errors import (
    ConnectorUnavailable,
    DsxError,
    NotFoundError,
    PermanentError,
    RetryableError,
    ScannerUnavailable,
)
from shared.hmac_auth import Signer
from shared.item_version import ITEM_VERSION_HEADER, ITEM_VERSIONS_HEADER, MAX_VERSION_CHARS
from shared.models import DsxaFileInfo, DsxaVerdict, ScanTask, Verdict, VerdictDetails
from shared.tls import client_ssl

SMALL_BODY = 1 << 20  # read whole below this; stream above it


@dataclass(frozen=True)
class ScanConfig:
    scan_url: str
    auth_token: str | None
    protected_entity: int
    scanner_timeout_s: float
    connector_timeout_s: float
    connect_timeout_s: float
    max_file_size_bytes: int
    read_ssl: ssl.SSLContext | bool = True  # TLS checks of the connector (True: the system's)
    scan_ssl: ssl.SSLContext | bool = True  # and of the scanner

    @cached_property
    def scan_target(self) -> Target:
        return target(self.scan_url)

    @classmethod
    def from_settings(cls, settings: Settings) -> ScanConfig:
        """The workers' view of the core's settings (the test route builds the same)."""
        scanner = settings.scanner
        return cls(
            scan_url=scanner.scan_binary_url,
            auth_token=scanner.auth_token.get_secret_value() if scanner.auth_token else None,
            protected_entity=scanner.protected_entity,
            scanner_timeout_s=scanner.timeout_s,
            connector_timeout_s=settings.workers.connector_timeout_s,
            connect_timeout_s=scanner.connect_timeout_s,
            max_file_size_bytes=scanner.max_file_size_bytes,
            read_ssl=client_ssl(settings.connectors.verify_tls, settings.connectors.ca_bundle),
            scan_ssl=client_ssl(scanner.verify_tls, scanner.ca_bundle),
        )


@lru_cache(maxsize=1024)
def connector_route(connector_url: str, route: Route) -> tuple[Target, str]:
    """The URL of a connector's ``route`` and the ``path?query`` DSX-HMAC signs (as sent on the
    request line), built once per connector and route."""
    url = target(route_url(connector_url, route))
    return url, url.path.decode("ascii")


JSON_HEADERS = {"Content-Type": "application/json"}
ERROR_BODY_LIMIT = 4096


BATCHABLE_BYTES = MAX_ITEM_BYTES  # items read with read_files when their size is known and at most this
_ANSWER_LIMIT = MAX_ITEMS * (MAX_ITEM_BYTES + HEADER_BYTES + ERROR_BODY_LIMIT)
# Connectors that answered read_files with 404/405 (1.x ones): read item by item, asked again later.
_NO_BATCH_RETRY_S = 600.0
_no_batch: dict[str, float] = {}


def batchable(task: ScanTask, connector: ConnectorRef) -> bool:
    """Whether ``task``'s item can be read in a group: small, and its connector reads groups."""
    size = task.size_in_bytes
    if size is None or size > BATCHABLE_BYTES:
        return False
    refused_at = _no_batch.get(connector.url)
    return refused_at is None or time.monotonic() - refused_at > _NO_BATCH_RETRY_S


def connector_error(status: int, body: bytes, what: str) -> DsxError:
    """The error of a connector's failed answer, by ``connector_client.classify``."""
    reason = error_reason(body) if body else ""
    kind = classify(status, body)
    if kind is AnswerKind.GONE:
        return NotFoundError(f"{what}: item not found on the connector ({reason})", status_code=status)
    if kind is AnswerKind.UNAVAILABLE:
        return ConnectorUnavailable(f"{what}: connector unavailable ({status}): {reason}", status_code=status)
    return PermanentError(f"{what}: connector refused ({status}): {reason}", status_code=status)


def is_json(media_type: str) -> bool:
    """Whether a media type (lower case, no parameters) is JSON: ``application/json``, ``text/json``,
    ``application/problem+json``... A connector's JSON answer to a read is an error, never the file."""
    subtype = media_type.rpartition("/")[2]
    return subtype == "json" or subtype.endswith("+json")


def delimited(answer: Answer) -> bool:
    """Whether the answer's end can be told from a cut connection: it has a Content-Length or is
    chunked (SPEC §5). Without either, a connection closed mid-file would pass for the file's end."""
    if answer.content_length is not None:
        return True
    return "chunked" in (answer.header("Transfer-Encoding") or "").lower()


def undelimited(what: str) -> ConnectorUnavailable:
    return ConnectorUnavailable(
        f"{what}: connector answered without Content-Length or chunked encoding: "
        "its end cannot be told from a cut connection"
    )


def valid_version(value: object) -> str | None:
    """An item version as the contract allows it (ASCII, at most MAX_VERSION_CHARS), else None."""
    if isinstance(value, str) and 0 < len(value) <= MAX_VERSION_CHARS and value.isascii():
        return value
    return None


def _versions_of(header: str | None, count: int) -> list[str | None]:
    """The ``X-Item-Versions`` answer of ``read_files``: one entry per item, or none at all."""
    if not header:
        return [None] * count
    try:
        values = json.loads(header)
    except (ValueError, RecursionError):  # RecursionError: a header of nested brackets
        return [None] * count
    if not isinstance(values, list) or len(values) != count:
        return [None] * count
    return [valid_version(v) for v in values]


def too_large(size: int, limit: int) -> DsxaVerdict:
    return DsxaVerdict(
        verdict=Verdict.NON_COMPLIANT.value,
        verdict_details=VerdictDetails(
            event_description="File not scanned: above the scanner's size limit", reason="File Size Too Large"
        ),
        file_info=DsxaFileInfo(file_size_in_bytes=size),
    )


async def read_items(
    pool: Transport,
    tasks: list[ScanTask],
    connector: ConnectorRef,
    cfg: ScanConfig,
    signer: Signer | None = None,
    versions: dict[str, str] | None = None,
) -> list[bytes | DsxError | None] | None:
    """Read small items in one ``read_files`` call (``shared.batch_read``).

    ``versions`` receives, per request id, the item version the connector answered
    (``X-Item-Versions``, shared/item_version.py): what a guarded action later acts on.

    Per item: its bytes, the error ``read_file`` would have raised, or None when the connector
    wants it read with ``read_file`` (too large). None for the whole call when the connector has
    no ``read_files`` (then it is remembered, and its items are read one by one). A failure of the
    call itself raises, as ``read_file``'s would, for every item.
    """
    request = read_files_body(tasks)
    try:
        answer = await _post_to_connector(
            pool, connector_route(connector.url, Route.READ_FILES), request, cfg, signer
        )
        async with answer:
            if answer.status in (404, 405):
                await answer.read(ERROR_BODY_LIMIT)
                _no_batch[connector.url] = time.monotonic()
                return None
            if answer.status != 200:
                raise connector_error(answer.status, await answer.read(ERROR_BODY_LIMIT), "read_files")
            if answer.content_type != MEDIA_TYPE:
                reason = error_reason(await answer.read(ERROR_BODY_LIMIT))
                raise PermanentError(f"read_files: connector answered {answer.content_type!r}: {reason}")
            if not delimited(answer):
                raise undelimited("read_files")
            content = await answer.read(_ANSWER_LIMIT + 1)
            found_versions = _versions_of(answer.header(ITEM_VERSIONS_HEADER), len(tasks))
    except (TimeoutError, OSError) as exc:
        raise ConnectorUnavailable(f"read_files: connector unreachable or timed out: {exc!r}") from None
    try:
        frames = list(iter_frames(content, len(tasks)))
    except FrameError as exc:
        raise ConnectorUnavailable(f"read_files: malformed answer: {exc}") from None
    items: list[bytes | DsxError | None] = []
    for task, version, (status, payload) in zip(tasks, found_versions, frames, strict=False):
        if status == 200:
            if versions is not None and version is not None:
                versions[task.id] = version
            items.append(bytes(payload))
        elif status == 413:
            items.append(None)
        else:
            items.append(connector_error(status, bytes(payload[:ERROR_BODY_LIMIT]), "read_file"))
    return items


async def _post_to_connector(
    pool: Transport, route: tuple[Target, str], body: bytes, cfg: ScanConfig, signer: Signer | None
) -> Answer:
    """POST ``body`` (JSON) to a connector route, signed with DSX-HMAC when there is a ``signer``."""
    url, path = route
    headers = JSON_HEADERS
    if signer is not None:
        headers = {**JSON_HEADERS, "Authorization": signer.authorization("POST", path, body)}
    return await pool.request(
        "POST", url, headers, body, ssl_option=cfg.read_ssl,
        connect_timeout=cfg.connect_timeout_s, read_timeout=cfg.connector_timeout_s,
        resolve=connector_address,
    )  # fmt: skip


def _headers(task: ScanTask, connector: ConnectorRef, cfg: ScanConfig) -> dict[str, str]:
    return scan_headers(
        cfg.auth_token,
        cfg.protected_entity,
        custom_metadata(task.location, task.metainfo, connector.name, task.id),
    )


async def scan_bytes(
    pool: Transport, task: ScanTask, connector: ConnectorRef, data: bytes, cfg: ScanConfig
) -> DsxaVerdict:
    """Scan an item already read (by ``read_items``)."""
    if len(data) > cfg.max_file_size_bytes:
        return too_large(len(data), cfg.max_file_size_bytes)
    return await _scan(pool, data, len(data), _headers(task, connector, cfg), cfg)


async def scan_item(
    pool: Transport,
    task: ScanTask,
    connector: ConnectorRef,
    cfg: ScanConfig,
    signer: Signer | None = None,
    versions: dict[str, str] | None = None,
) -> DsxaVerdict:
    """Fetch ``task``'s item from its connector and scan it; raises the shared error family.

    ``signer`` signs the ``read_file`` call with the connector's DSX-HMAC pair (SPEC §8).
    ``versions`` receives the item's version (``X-Item-Version``) under the request id.
    """
    if task.size_in_bytes is not None and task.size_in_bytes > cfg.max_file_size_bytes:
        return too_large(task.size_in_bytes, cfg.max_file_size_bytes)
    headers = _headers(task, connector, cfg)
    request = json.dumps(read_file_body(task, connector)).encode()
    try:
        item = await _post_to_connector(
            pool, connector_route(connector.url, Route.READ_FILE), request, cfg, signer
        )
    except (TimeoutError, OSError) as exc:
        raise ConnectorUnavailable(f"read_file: connector unreachable or timed out: {exc!r}") from None
    async with item:
        try:
            if item.status != 200:
                raise connector_error(item.status, await item.read(ERROR_BODY_LIMIT), "read_file")
            version = valid_version(item.header(ITEM_VERSION_HEADER))
            if versions is not None and version is not None:
                versions[task.id] = version
            if is_json(item.content_type):
                reason = error_reason(await item.read(ERROR_BODY_LIMIT))
                raise PermanentError(f"read_file: connector answered JSON instead of the file: {reason}")
            if not delimited(item):
                raise undelimited("read_file")
            size = item.content_length
            if size is not None and size > cfg.max_file_size_bytes:
                return too_large(size, cfg.max_file_size_bytes)
            body = await item.read() if size is not None and size <= SMALL_BODY else None
        except (TimeoutError, OSError) as exc:
            raise ConnectorUnavailable(f"read_file: connector failed while sending: {exc!r}") from None
        if body is not None:
            return await _scan(pool, body, size, headers, cfg)
        stream = _Counted(item, cfg.max_file_size_bytes)  # to the scanner piece by piece, never held whole
        try:
            return await _scan(pool, stream.chunks(), size, headers, cfg)
        except Exception:
            if stream.over:  # stopped by the count, whatever the transport made of that
                return too_large(stream.size, cfg.max_file_size_bytes)
            raise


async def scan_sample(transport: Transport, data: bytes, metadata: str, cfg: ScanConfig) -> DsxaVerdict:
    """Scan ``data`` as the workers scan an item (``/test/dsxa-connection``): same transport, same
    headers, same mapping of the answer."""
    return await _scan(
        transport, data, len(data), scan_headers(cfg.auth_token, cfg.protected_entity, metadata), cfg
    )


async def _scan(
    pool: Transport,
    body: bytes | AsyncIterator[bytes],
    size: int | None,
    headers: dict[str, str],
    cfg: ScanConfig,
) -> DsxaVerdict:
    try:
        answer = await pool.request(
            "POST", cfg.scan_target, headers, body, content_length=size, ssl_option=cfg.scan_ssl,
            connect_timeout=cfg.connect_timeout_s, read_timeout=cfg.scanner_timeout_s,
        )  # fmt: skip
        async with answer:
            content = await answer.read()
    except (TimeoutError, OSError) as exc:
        raise ScannerUnavailable(f"scan: scanner unreachable or timed out: {exc!r}") from None
    if (error := classify_status(answer.status, content)) is None:
        try:
            return parse_verdict(content)
        except RetryableError as exc:  # "still initialising"
            raise ScannerUnavailable(exc.message, status_code=exc.status_code) from None
    if isinstance(error, RetryableError) and not isinstance(error, ScannerUnavailable):
        raise ScannerUnavailable(error.message, status_code=error.status_code)  # the scanner's 5xx
    raise error


class _TooLarge(Exception):
    pass


class _Counted:
    """The connector's answer as a stream, counted: past ``limit`` bytes it stops, so an answer
    without a declared size (chunked) is held to the size limit too."""

    def __init__(self, item: Answer, limit: int) -> None:
        self._item = item
        self._limit = limit
        self.size = 0

    @property
    def over(self) -> bool:
        return self.size > self._limit

    async def chunks(self) -> AsyncIterator[bytes]:
        """Its failures are the connector's, not the scanner's."""
        try:
            async for chunk in self._item.iter_chunks():
                self.size += len(chunk)
                if self.over:
                    raise _TooLarge(f"read_file: more than {self._limit} bytes")
                yield chunk
        except (TimeoutError, OSError) as exc:
            raise ConnectorUnavailable(f"read_file: connector failed while streaming: {exc!r}") from None
