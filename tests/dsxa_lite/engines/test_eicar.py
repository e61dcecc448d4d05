"""EICAR engine: the test string alone, with trailing whitespace up to 128 bytes, nothing else."""

from __future__ import annotations

import pytest

from dsxa_lite.engines import ScanInput
from dsxa_lite.engines.eicar import EicarEngine, eicar_bytes
from dsxa_lite.filetype import detect_file_type

from ..samples import EICAR_SHA256, eicar, sha256

pytestmark = pytest.mark.unit


def item(data: bytes) -> ScanInput:
    return ScanInput(sha256(data), len(data), data[:4096], detect_file_type(data), data=data)


def test_engine_rebuilds_the_published_string() -> None:
    assert eicar_bytes() == eicar()


@pytest.mark.parametrize(
    "suffix",
    [b"", b"\r\n", b"\n", b"\t \x1a", b" " * 60],  # 68 + 60 = 128 bytes, the maximum
)
def test_eicar_with_optional_whitespace_is_detected(suffix: bytes) -> None:
    hit = EicarEngine().scan(item(eicar() + suffix))
    assert hit is not None
    assert hit.reason == "eicar: EICAR-Test-File"
    assert hit.threat_type == "VIRUS"


@pytest.mark.parametrize(
    "data",
    [
        pytest.param(eicar() + b" " * 61, id="129 bytes"),
        pytest.param(eicar() + b"x", id="trailing text"),
        pytest.param(b" " + eicar(), id="leading space"),
        pytest.param(eicar()[:-1], id="truncated"),
        pytest.param(b"", id="empty"),
    ],
)
def test_anything_else_is_not_eicar(data: bytes) -> None:
    assert EicarEngine().scan(item(data)) is None


def test_lookup_knows_the_hash_of_the_bare_string() -> None:
    engine = EicarEngine()
    assert engine.lookup(EICAR_SHA256) is not None
    assert engine.lookup(sha256(b"other")) is None
