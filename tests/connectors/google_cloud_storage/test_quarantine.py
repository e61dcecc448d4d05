"""The quarantine contract (``tests/connectors/quarantine_contract.py``) on this connector's emulator."""

from tests.connectors.quarantine_contract import QuarantineContract


class TestQuarantine(QuarantineContract):
    """Every test of the quarantine contract."""
