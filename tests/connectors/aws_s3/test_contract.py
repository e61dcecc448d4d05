"""The object-store contract (``tests/support/cloud_contract.py``) for the AWS S3 connector, on moto."""

from typing import Any

import pytest

from tests.connectors.aws_s3.conftest import S3Store
from tests.dsxa_lite.samples import eicar
from tests.support.cloud_contract import CloudConnectorContract, Core, Deployment
from tests.support.procs import wait_for


class TestAwsS3Connector(CloudConnectorContract):
    """Every test of the contract, against moto in server mode."""

    @pytest.mark.e2e
    def test_an_object_whose_key_cannot_be_read_is_reported_not_scanned(
        self, store: S3Store, core: Core, deployment: Deployment
    ) -> None:
        """docs: a key of the asset ``read_file`` refuses (a ``..`` segment, which a path-style URL
        could resolve into another bucket) is still submitted, and its result says it was not
        scanned and why; it was skipped in silence, so an uploader could keep malware from the scan.
        Beside it, a key with a backslash and a tab is a name S3 holds as it is: scanned."""
        d = deployment
        refused, odd = "incoming/../dropper.com", "incoming/odd\\..\\name\t.com"
        for key in (refused, odd):
            store.put(d.bucket, key, eicar())
            answer = store.notify(d.url, d.bucket, key, len(eicar()))
            assert answer.status_code == 200 and answer.json()["submitted"] == 1, answer.text

        def result(key: str) -> dict[str, Any] | None:
            return next((r for r in core.results(connector=d.uuid) if r["location"] == key), None)

        try:
            reported: dict[str, Any] = wait_for(lambda: result(refused), timeout=30, what="its result")  # type: ignore[assignment]
            assert reported["verdict"] == "Not Scanned" and "escapes the asset" in str(reported["error"])
            scanned: dict[str, Any] = wait_for(lambda: result(odd), timeout=30, what="its result")  # type: ignore[assignment]
            assert scanned["verdict"] == "Malicious"
        finally:
            for key in (refused, odd):  # out of the way of the contract's full scans
                store.s3.delete_object(Bucket=d.bucket, Key=key)
