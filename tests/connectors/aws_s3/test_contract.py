"""The object-store contract (``tests/support/cloud_contract.py``) for the AWS S3 connector, on moto."""

from tests.support.cloud_contract import CloudConnectorContract


class TestAwsS3Connector(CloudConnectorContract):
    """Every test of the contract, against moto in server mode."""
