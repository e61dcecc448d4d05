"""``POST /{connector}/read_files``: many small items in one answer (an additive extension of SPEC §5).

A full scan reads every item through its connector. One HTTP exchange per small file costs the
connector and the worker more CPU than the file itself (docs/performance.md), so the workers ask
for small items in groups; every item keeps its own status, and a connector without this route
(a 1.x one) answers 404 and is read item by item with ``read_file``.

Request: ``{"items": [{"location": str, "metainfo": str}, ...]}`` (JSON, DSX-HMAC signed like
``read_file``), 1 to :data:`MAX_ITEMS` items.

Answer: ``application/x-dsx-items``, one frame per requested item, in order. A frame is a 6-byte
header, the item's HTTP-like ``status`` (unsigned 16 bits, big-endian) and the payload's length
(unsigned 32 bits), then the payload: the item's bytes when the status is 200, else the JSON error
body ``read_file`` would have answered. An item larger than :data:`MAX_ITEM_BYTES` is answered
413: read it with ``read_file``, which streams. A connector holds at most ``MAX_ITEMS x
MAX_ITEM_BYTES`` (8 MiB) for one answer.
"""

from __future__ import annotations

import struct
from collections.abc import Iterator

from pydantic import BaseModel, Field

MEDIA_TYPE = "application/x-dsx-items"
MAX_ITEMS = 32
MAX_ITEM_BYTES = 256 * 1024

_HEADER = struct.Struct("!HI")
HEADER_BYTES = _HEADER.size


class ReadItem(BaseModel):
    location: str = Field(min_length=1, description="the item's key or path inside the asset")
    metainfo: str = ""


class ReadFilesRequest(BaseModel):
    items: list[ReadItem] = Field(min_length=1, max_length=MAX_ITEMS)


def frame_header(status: int, length: int) -> bytes:
    return _HEADER.pack(status, length)


class FrameError(ValueError):
    """The answer is not a well-formed sequence of frames."""


def iter_frames(body: bytes, count: int) -> Iterator[tuple[int, memoryview]]:
    """``(status, payload)`` of each of ``count`` frames in ``body``; ``FrameError`` if malformed."""
    view = memoryview(body)
    offset = 0
    for _ in range(count):
        if offset + HEADER_BYTES > len(view):
            raise FrameError("answer ends before every item's frame")
        status, length = _HEADER.unpack_from(view, offset)
        offset += HEADER_BYTES
        if offset + length > len(view):
            raise FrameError("a frame is longer than what is left of the answer")
        yield status, view[offset : offset + length]
        offset += length
    if offset != len(view):
        raise FrameError("answer carries more than the frames asked for")
