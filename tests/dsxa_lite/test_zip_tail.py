"""What a streamed body keeps for a ZIP at its end (dsxa_lite.zip_tail): the bytes from the first
local file header on, wherever the parts split it, and nothing when there is none."""

from __future__ import annotations

import itertools
import tempfile

import pytest

from dsxa_lite.zip_tail import ZIP_LOCAL_HEADER, ZipTail

from .samples import filler

pytestmark = pytest.mark.unit


def fed(data: bytes, cuts: list[int]) -> ZipTail:
    tail = ZipTail(tempfile.TemporaryFile)
    bounds = [0, *cuts, len(data)]
    tail.take([data[a:b] for a, b in itertools.pairwise(bounds)])
    tail.finish()
    return tail


@pytest.mark.parametrize("cut", range(95, 106))  # the signature at 100: every split around it
@pytest.mark.parametrize("second_cut", [None, 1, 2, 3])
def test_kept_from_the_first_signature_however_the_parts_split_it(cut: int, second_cut: int | None) -> None:
    data = filler(100) + ZIP_LOCAL_HEADER + b"member bytes" + ZIP_LOCAL_HEADER + filler(50)
    cuts = [cut] if second_cut is None else [cut, cut + second_cut]  # parts of 1-3 bytes too
    tail = fed(data, cuts)
    assert tail.offset == 100
    source = tail.source(len(data))
    assert source is not None
    assert source.read() == bytes(100) + data[100:]  # what was not kept reads as zeros
    source.seek(102)
    assert source.read(6) == data[102:108]
    assert source.seek(-3, 2) == len(data) - 3 and source.read() == data[-3:]
    tail.close()


def test_parts_shorter_than_the_signature_one_byte_at_a_time() -> None:
    data = b"abc" + ZIP_LOCAL_HEADER + b"rest"
    tail = fed(data, list(range(1, len(data))))
    assert tail.offset == 3
    source = tail.source(len(data))
    assert source is not None and source.read() == bytes(3) + data[3:]


def test_nothing_is_kept_without_a_local_header() -> None:
    data = filler(300_000) + b"PK\x05\x06" + bytes(18)  # an end record alone has no member
    tail = fed(data, [1000, 1001, 150_000])
    assert tail.offset is None and tail.spool is None and tail.source(len(data)) is None
