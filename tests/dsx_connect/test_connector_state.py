"""A connector's stored state (``PUT /connectors/state``) against a real Redis: bounded per connector,
deleted with its identity, and never addressed through another connector's uuid."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import redis

from dsx_connect import keys
from dsx_connect.state.connectors import StateBoundExceeded, delete_state, get_state, put_state
from tests.support.redis_db import flushed_db

pytestmark = pytest.mark.integration


@pytest.fixture
def db(redis_url: str) -> Iterator[redis.Redis]:
    with flushed_db(redis_url, 14) as conn:
        yield conn


def test_a_connectors_state_is_bounded_in_keys_and_bytes(db: redis.Redis) -> None:
    for n in range(10):
        put_state(db, "c1", f"ns{n % 3}", f"k{n}", "v", max_keys=10, max_bytes=1000)
    with pytest.raises(StateBoundExceeded) as refused:
        put_state(db, "c1", "ns-new", "k10", "v", max_keys=10, max_bytes=1000)
    assert refused.value.bound == "keys" and not db.exists(keys.connector_state("c1", "ns-new"))
    put_state(db, "c1", "ns0", "k0", "overwritten", max_keys=10, max_bytes=1000)  # no new key: passes
    assert get_state(db, "c1", "ns0", "k0") == "overwritten"
    put_state(db, "c2", "ns", "k", "x" * 900, max_keys=10, max_bytes=1000)  # another connector's own
    with pytest.raises(StateBoundExceeded) as refused:
        put_state(db, "c2", "ns", "k", "x" * 1000, max_keys=10, max_bytes=1000)
    assert refused.value.bound == "bytes" and get_state(db, "c2", "ns", "k") == "x" * 900
    put_state(db, "c2", "ns", "k", "short", max_keys=10, max_bytes=1000)
    assert db.hgetall(keys.connector_state_usage("c2")) == {"keys": "1", "bytes": str(len("k") + 5)}


def test_state_written_before_the_bounds_is_counted_once_and_deleted_with_the_connector(
    db: redis.Redis,
) -> None:
    db.hset(keys.connector_state("c1", "old"), mapping={"a": "12345", "b": "1"})  # an earlier release's
    put_state(db, "c1", "old", "c", "x")
    put_state(db, "c1", "new", "d", "y")
    assert db.hgetall(keys.connector_state_usage("c1")) == {"keys": "4", "bytes": str(6 + 2 + 2 + 2)}
    put_state(db, "other", "old", "a", "kept")
    db.hset(keys.connector_state("c1", "untouched"), "e", "z")  # never written since: found by name
    assert delete_state(db, "c1") == 3
    assert sorted(db.keys("*")) == sorted(
        [
            keys.connector_state("other", "old"),
            keys.connector_state_usage("other"),
            keys.connector_state_namespaces("other"),
        ]
    )


def test_a_uuid_with_a_colon_cannot_address_another_connectors_state(db: redis.Redis) -> None:
    """uuid ``X`` + namespace ``Y:N`` and uuid ``X:Y`` + namespace ``N`` were one Redis key."""
    put_state(db, "X", "Y:N", "cursor", "x's")
    with pytest.raises(ValueError, match="uuid"):
        put_state(db, "X:Y", "N", "cursor", "forged")
    with pytest.raises(ValueError, match="uuid"):
        get_state(db, "X:Y", "N", "cursor")
    assert get_state(db, "X", "Y:N", "cursor") == "x's"
