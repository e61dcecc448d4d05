"""The cloud contract (``tests/support/cloud_contract.py``) for the SharePoint connector, on the fake Graph."""

from tests.support.cloud_contract import CloudConnectorContract


class TestSharePointConnector(CloudConnectorContract):
    """Every test of the contract, against the fake Graph service."""
