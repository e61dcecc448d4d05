"""The object-store contract (``tests/support/cloud_contract.py``) for the Google Cloud Storage connector."""

from tests.support.cloud_contract import CloudConnectorContract


class TestGoogleCloudStorageConnector(CloudConnectorContract):
    """Every test of the contract, against gcp-storage-emulator."""
