"""shared.backoff: the one retry backoff of the core and the connectors."""

from __future__ import annotations

import pytest

from shared.backoff import equal_jitter, full_jitter, nominal_delay


def test_the_nominal_delay_doubles_from_base_up_to_the_cap() -> None:
    assert [nominal_delay(n, 0.5, 6.0) for n in range(1, 7)] == [0.5, 1.0, 2.0, 4.0, 6.0, 6.0]
    assert nominal_delay(0, 0.5, 6.0) == 0.5  # no retry number below the first
    assert nominal_delay(10_000, 0.5, 6.0) == 6.0  # no overflow on a long outage


@pytest.mark.parametrize("retry", [1, 2, 5, 40])
def test_jitter_stays_within_its_share_of_the_nominal_delay(retry: int) -> None:
    ceiling = nominal_delay(retry, 0.2, 10.0)
    full = [full_jitter(retry, 0.2, 10.0) for _ in range(500)]
    equal = [equal_jitter(retry, 0.2, 10.0) for _ in range(500)]
    assert all(0 <= d <= ceiling for d in full) and min(full) < ceiling / 2
    assert all(ceiling / 2 <= d <= ceiling for d in equal)
