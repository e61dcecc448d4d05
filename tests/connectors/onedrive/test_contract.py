"""The cloud contract (``tests/support/cloud_contract.py``) for the OneDrive connector, on the fake Graph."""

from tests.support.cloud_contract import CloudConnectorContract


class TestOneDriveConnector(CloudConnectorContract):
    """Every test of the contract, against the fake Graph service."""
