"""The object-store contract (``tests/support/cloud_contract.py``) for the Azure Blob Storage connector, on Azurite."""

from tests.support.cloud_contract import CloudConnectorContract


class TestAzureBlobStorageConnector(CloudConnectorContract):
    """Every test of the contract, against Azurite's blob service."""
