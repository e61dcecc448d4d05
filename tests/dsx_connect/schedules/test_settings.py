"""The scheduler's settings: defaults, and a lease too short for its polls stops the service at start."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from dsx_connect.settings import Settings

pytestmark = pytest.mark.unit


def test_the_scheduler_is_on_by_default(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("DSXCONNECT_SCHEDULER__ENABLED", raising=False)
    scheduler = Settings().scheduler
    assert scheduler.enabled and scheduler.lease_ttl_s >= 2 * scheduler.poll_s


def test_settings_come_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DSXCONNECT_SCHEDULER__ENABLED", "false")
    monkeypatch.setenv("DSXCONNECT_SCHEDULER__POLL_S", "0.5")
    monkeypatch.setenv("DSXCONNECT_SCHEDULER__LEASE_TTL_S", "2")
    scheduler = Settings().scheduler
    assert (scheduler.enabled, scheduler.poll_s, scheduler.lease_ttl_s) == (False, 0.5, 2.0)


def test_a_lease_shorter_than_two_polls_is_refused_naming_both(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DSXCONNECT_SCHEDULER__POLL_S", "10")
    monkeypatch.setenv("DSXCONNECT_SCHEDULER__LEASE_TTL_S", "15")
    with pytest.raises(
        ValidationError, match=r"DSXCONNECT_SCHEDULER__LEASE_TTL_S.*DSXCONNECT_SCHEDULER__POLL_S"
    ):
        Settings()
