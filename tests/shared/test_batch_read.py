"""The frames of a ``read_files`` answer: what a worker accepts and what it refuses."""

from __future__ import annotations

import pytest

from shared.batch_read import FrameError, frame_header, iter_frames

pytestmark = pytest.mark.unit


def test_frames_come_back_in_order_with_their_status() -> None:
    body = frame_header(200, 3) + b"abc" + frame_header(404, 2) + b"{}" + frame_header(200, 0)
    assert [(s, bytes(p)) for s, p in iter_frames(body, 3)] == [(200, b"abc"), (404, b"{}"), (200, b"")]


@pytest.mark.parametrize(
    ("body", "count"),
    [
        pytest.param(frame_header(200, 3) + b"abc", 2, id="a frame missing"),
        pytest.param(frame_header(200, 9) + b"abc", 1, id="payload cut short"),
        pytest.param(frame_header(200, 1) + b"ab", 1, id="bytes left over"),
        pytest.param(b"\x00\xc8", 1, id="header cut short"),
    ],
)
def test_a_malformed_answer_is_refused(body: bytes, count: int) -> None:
    with pytest.raises(FrameError):
        list(iter_frames(body, count))
