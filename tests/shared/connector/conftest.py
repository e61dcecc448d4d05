"""Fixtures of the connector framework tests."""

from tests.shared.connector.core_receiver import fake_core  # noqa: F401  (a fixture)
