"""Fixtures of the Google Cloud Storage connector tests: gcp-storage-emulator, and the SDK pointed at it."""

from __future__ import annotations

import base64
import json
import os
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest
from google.api_core.exceptions import NotFound
from google.auth.credentials import AnonymousCredentials
from google.cloud import storage

from connectors.google_cloud_storage.connector import GoogleCloudStorageConnector
from connectors.google_cloud_storage.settings import GoogleCloudStorageSettings
from tests.support.cloud_contract import core  # noqa: F401  (a fixture)
from tests.support.emulators import Emulator, gcs_emulator


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for key in list(os.environ):
        if key.startswith(("DSXCONNECTOR_", "DSXCONNECT_", "GOOGLE_", "STORAGE_EMULATOR_HOST", "GCLOUD")):
            monkeypatch.delenv(key)


class GcsStore:
    """The contract's view of GCS (``tests.support.cloud_contract.Store``), on gcp-storage-emulator."""

    package, name = "google_cloud_storage", "google-cloud-storage-connector"
    honours_preconditions = False  # gcp-storage-emulator ignores ifGenerationMatch
    quarantine_setting, page_size_setting = "gcs_quarantine_bucket", "gcs_list_page_size"

    def __init__(self, endpoint: str, tmp: Path) -> None:
        self.endpoint, self.tmp = endpoint, tmp
        self.client = storage.Client(
            project="test", credentials=AnonymousCredentials(), client_options={"api_endpoint": endpoint}
        )

    def settings(self, **overrides: Any) -> GoogleCloudStorageSettings:
        return GoogleCloudStorageSettings(
            **{"gcs_endpoint_url": self.endpoint, "gcs_anonymous": True, **overrides}
        )

    def connector(self, **settings: Any) -> GoogleCloudStorageConnector:
        return GoogleCloudStorageConnector(self.settings(**settings))

    def connector_env(self) -> dict[str, str]:
        # the SDK's own emulator switch: that endpoint, anonymous credentials
        return {"STORAGE_EMULATOR_HOST": self.endpoint}

    def create_bucket(self, bucket: str) -> None:
        self.client.create_bucket(bucket)

    def put(self, bucket: str, key: str, data: bytes) -> None:
        self.client.bucket(bucket).blob(key).upload_from_string(data)

    def get(self, bucket: str, key: str) -> bytes | None:
        try:
            return self.client.bucket(bucket).blob(key).download_as_bytes()
        except NotFound:
            return None

    def keys(self, bucket: str, prefix: str = "") -> list[str]:
        return [blob.name for blob in self.client.list_blobs(bucket, prefix=prefix or None)]

    def tags(self, bucket: str, key: str) -> dict[str, str]:
        blob = self.client.bucket(bucket).get_blob(key)
        return dict(blob.metadata or {}) if blob is not None else {}

    def notify(self, connector_url: str, bucket: str, key: str, size: int) -> httpx.Response:
        """A Pub/Sub push delivery of the bucket's OBJECT_FINALIZE notification."""
        return httpx.post(f"{connector_url}/webhook/event", json=pubsub_push(bucket, key, size))

    @contextmanager
    def bad_credentials(self) -> Iterator[dict[str, Any]]:
        """A service-account key whose token endpoint (a local stand-in) answers ``invalid_grant``."""
        with refusing_token_endpoint() as token_uri:
            path = self.tmp / "revoked-key.json"
            path.write_text(json.dumps(service_account_key(token_uri)))
            yield {"gcs_anonymous": False, "gcs_credentials_file": str(path)}


def pubsub_push(bucket: str, name: str, size: int, event_type: str = "OBJECT_FINALIZE") -> dict[str, Any]:
    obj = {"kind": "storage#object", "bucket": bucket, "name": name, "size": str(size), "generation": "1"}
    attributes = {
        "bucketId": bucket,
        "objectId": name,
        "eventType": event_type,
        "payloadFormat": "JSON_API_V1",
        "notificationConfig": f"projects/_/buckets/{bucket}/notificationConfigs/1",
    }
    return {
        "message": {
            "attributes": attributes,
            "data": base64.b64encode(json.dumps(obj).encode()).decode(),
            "messageId": "1234567890",
            "publishTime": "2024-05-01T12:00:00.000Z",
        },
        "subscription": "projects/demo/subscriptions/dsx-push",
    }


def service_account_key(token_uri: str) -> dict[str, str]:
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa

    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()
    return {
        "type": "service_account",
        "project_id": "demo",
        "private_key_id": "0" * 40,
        "private_key": pem,
        "client_email": "scanner@demo.iam.gserviceaccount.com",
        "client_id": "1",
        "token_uri": token_uri,
    }


@contextmanager
def refusing_token_endpoint() -> Iterator[str]:
    """An OAuth token endpoint answering every grant as Google does for a revoked key."""

    class Refuse(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            self.rfile.read(int(self.headers.get("content-length") or 0))
            body = json.dumps(
                {"error": "invalid_grant", "error_description": "Invalid JWT Signature."}
            ).encode()
            self.send_response(400)
            self.send_header("content-type", "application/json")
            self.send_header("content-length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: Any) -> None:
            return None

    server = ThreadingHTTPServer(("127.0.0.1", 0), Refuse)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/token"
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture(scope="session")
def emulator(logs_dir: Path) -> Iterator[Emulator]:
    with gcs_emulator(logs_dir) as running:
        yield running


@pytest.fixture(scope="session")
def store(emulator: Emulator, tmp_path_factory: pytest.TempPathFactory) -> GcsStore:
    return GcsStore(emulator.endpoint, tmp_path_factory.mktemp("gcs"))
