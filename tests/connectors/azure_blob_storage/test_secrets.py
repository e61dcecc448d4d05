"""A SAS never leaves the Azure connector: not in ``/readyz``, not in an error answer, not in a log line.

The SDK's exceptions quote the request URL, and with a SAS the URL's query carries its signature:
``Max retries exceeded with url: /devstoreaccount1/c?restype=container&...&sig=...`` (a transport
whose urllib3 retries are on) or ``Failed to parse: http://...?...&sig=...`` (an account URL the
HTTP stack cannot parse). That text went into ``classify_error``'s message, and from there into
``/readyz`` (public), the answers of ``read_file``/``item_action`` stored in results, and logs.
"""

from __future__ import annotations

import httpx
import pytest
import requests
from azure.core.credentials import AzureSasCredential
from azure.core.pipeline.transport import RequestsTransport
from azure.storage.blob import BlobServiceClient

from connectors.azure_blob_storage.connector import AzureBlobStorageConnector
from connectors.azure_blob_storage.settings import AzureBlobStorageSettings
from shared.connector import create_connector_app
from shared.redaction import redact

pytestmark = pytest.mark.unit

SIG = "SECRETSIG123"
SAS = f"sv=2021-08-06&ss=b&srt=sco&sp=rl&se=2030-01-01T00:00:00Z&sig={SIG}"


def unreachable(account_url: str) -> AzureBlobStorageConnector:
    """A connector over an account nobody answers, its client without retries (the SDK's policy
    retries for a minute and a half) and with urllib3's own retries on, as a transport given a
    plain ``requests`` session has them: its errors then quote the URL, query and all."""
    connector = AzureBlobStorageConnector(
        AzureBlobStorageSettings(
            asset="c/p", azure_account_url=account_url, azure_sas_token=SAS, auth={"enabled": False}
        )
    )
    connector.service = BlobServiceClient(
        account_url,
        credential=AzureSasCredential(SAS),
        retry_total=0,
        transport=RequestsTransport(session=requests.Session(), session_owner=False),
    )
    connector.configure(connector.settings)
    return connector


@pytest.mark.anyio
@pytest.mark.parametrize(
    "account_url",
    [
        # connection refused: "Max retries exceeded with url: /devstoreaccount1/c?...&sig=..."
        "http://127.0.0.1:1/devstoreaccount1",
        # a port the HTTP stack cannot parse: "Failed to parse: http://127.0.0.1:99999/...?...&sig=..."
        "http://127.0.0.1:99999/devstoreaccount1",
    ],
)
async def test_an_unreachable_account_never_shows_the_sas_signature(account_url: str) -> None:
    connector = unreachable(account_url)
    with pytest.raises(Exception) as failed:
        await connector.check()
    assert SIG in str(failed.value), "the SDK's message no longer quotes the URL: the test proves nothing"
    message = connector.classify_error(failed.value).message
    assert "unreachable" in message and SIG not in message and "sig=" not in message, message
    assert SIG not in redact(str(failed.value))  # any log line of the exception (tracebacks included)

    transport = httpx.ASGITransport(app=create_connector_app(connector))
    async with httpx.AsyncClient(transport=transport, base_url="http://t") as http:
        ready = await http.get("/readyz")
        read = await http.post(
            "/azure-blob-storage-connector/read_file", json={"location": "p/x.bin", "metainfo": "x"}
        )
    assert ready.status_code == 503 and "asset" in ready.json()["failing"]
    assert SIG not in ready.text, ready.text
    assert read.status_code == 503 and SIG not in read.text, read.text
    await connector.aclose()


def test_the_credentials_are_registered_for_redaction() -> None:
    key = "c2VjcmV0IGFjY291bnQga2V5IGZvciB0aGUgdGVzdA=="
    AzureBlobStorageConnector(
        AzureBlobStorageSettings(
            asset="c",
            azure_connection_string=f"AccountName=acct;AccountKey={key};BlobEndpoint=http://127.0.0.1:1/acct",
        )
    )
    AzureBlobStorageConnector(
        AzureBlobStorageSettings(
            asset="c", azure_account_url="http://127.0.0.1:1/acct", azure_sas_token="?sv=1&sig=abc%2Bdef%3D"
        )
    )
    line = redact(f"key {key} in a message; a url /c/b?se=2&sig=abc%2Bdef%3D and abc+def= decoded")
    assert key not in line and "abc%2Bdef" not in line and "abc+def=" not in line, line
