"""Stand-ins for the storage services that post webhooks, with keys the tests generate.

* :class:`SnsSender` signs SNS messages (SignatureVersion 1 and 2) with an RSA key whose
  self-signed certificate it serves from a local HTTP server, as SNS serves ``SigningCertURL``.
* :class:`PubSubTokens` mints Pub/Sub push OIDC tokens (RS256) and serves its JWKS locally.

Both run a real HTTP server on a free port (:class:`FileServer`), stopped with the fixture.
"""

from __future__ import annotations

import base64
import json
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import jwt
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa

from connectors.aws_s3.sns import canonical_string
from devstack.certs import self_signed


class FileServer:
    """A local HTTP server answering fixed bodies by path (404 otherwise); counts the requests."""

    def __init__(self) -> None:
        self.files: dict[str, tuple[bytes, str]] = {}
        self.requests: list[str] = []
        files, requests = self.files, self.requests

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                requests.append(self.path)
                body, kind = files.get(self.path.split("?")[0], (b"", ""))
                self.send_response(200 if kind else 404)
                self.send_header("Content-Type", kind or "text/plain")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self._thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> FileServer:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()


def _rsa_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def self_signed_pem(key: rsa.RSAPrivateKey, *, days: int = 1, name: str = "sns.amazonaws.com") -> bytes:
    backdate = timedelta(days=2) if days < 0 else timedelta(minutes=5)
    return self_signed(key, name, days=days, backdate=backdate).public_bytes(serialization.Encoding.PEM)


class SnsSender:
    """Signs SNS messages; its certificate lives at ``cert_url`` on a local server."""

    #: the ``AWS_SNS_URL_PATTERN`` that lets the connector fetch from the local server
    url_pattern = r"http://127\.0\.0\.1:\d+"
    topic = "arn:aws:sns:us-east-1:123456789012:dsx-uploads"

    def __init__(self, server: FileServer) -> None:
        self.server = server
        self.key = _rsa_key()
        self.cert_url = f"{server.url}/SimpleNotificationService-test.pem"
        server.files["/SimpleNotificationService-test.pem"] = (
            self_signed_pem(self.key),
            "application/x-pem-file",
        )
        server.files["/confirm"] = (b"<ConfirmSubscriptionResponse/>", "text/xml")

    def sign(
        self, message: dict[str, Any], version: str = "1", key: rsa.RSAPrivateKey | None = None
    ) -> dict[str, Any]:
        """``message`` with ``SignatureVersion``, ``SigningCertURL`` and ``Signature`` set."""
        signed = {
            **message,
            "SignatureVersion": version,
            "SigningCertURL": message.get("SigningCertURL", self.cert_url),
        }
        digest = hashes.SHA1() if version == "1" else hashes.SHA256()
        signature = (key or self.key).sign(canonical_string(signed), padding.PKCS1v15(), digest)
        signed["Signature"] = base64.b64encode(signature).decode()
        return signed

    def notification(self, s3_event: dict[str, Any], **fields: Any) -> dict[str, Any]:
        message = {
            "Type": "Notification",
            "MessageId": str(uuid.uuid4()),  # SNS gives every message its own id
            "TopicArn": self.topic,
            "Subject": "Amazon S3 Notification",
            "Message": json.dumps(s3_event),
            "Timestamp": sns_timestamp(),
        }
        return {**message, **fields}

    def confirmation(self) -> dict[str, Any]:
        return {
            "Type": "SubscriptionConfirmation",
            "MessageId": "165545c9-2a5c-472c-8df2-7ff2be2b3b1b",
            "Token": "abc",
            "TopicArn": self.topic,
            "Message": f"You have chosen to subscribe to the topic {self.topic}.",
            "SubscribeURL": f"{self.server.url}/confirm?Action=ConfirmSubscription&Token=abc",
            "Timestamp": sns_timestamp(),
        }


def sns_timestamp(seconds_ago: float = 0.0) -> str:
    """An SNS ``Timestamp`` (ISO 8601, milliseconds, ``Z``) ``seconds_ago`` before now."""
    when = datetime.now(UTC) - timedelta(seconds=seconds_ago)
    return when.strftime("%Y-%m-%dT%H:%M:%S.") + f"{when.microsecond // 1000:03d}Z"


class PubSubTokens:
    """Mints Pub/Sub push tokens as Google does (RS256, ``kid``); the JWKS is at ``jwks_url``."""

    service_account = "push@dsx-test.iam.gserviceaccount.com"

    def __init__(self, server: FileServer) -> None:
        self.key = _rsa_key()
        self.kid = "test-key-1"
        jwk = json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(self.key.public_key()))
        jwks = {"keys": [{**jwk, "kid": self.kid, "alg": "RS256", "use": "sig"}]}
        server.files["/oauth2/v3/certs"] = (json.dumps(jwks).encode(), "application/json")
        self.jwks_url = f"{server.url}/oauth2/v3/certs"

    def mint(
        self, audience: str, *, key: rsa.RSAPrivateKey | None = None, kid: str | None = None, **claims: Any
    ) -> str:
        now = int(time.time())
        payload = {
            "iss": "https://accounts.google.com",
            "aud": audience,
            "iat": now,
            "exp": now + 3600,
            "sub": "1234567890",
            "email": self.service_account,
            "email_verified": True,
            **claims,
        }
        payload = {k: v for k, v in payload.items() if v is not None}
        return jwt.encode(payload, key or self.key, algorithm="RS256", headers={"kid": kid or self.kid})


@contextmanager
def file_server() -> Iterator[FileServer]:
    with FileServer() as server:
        yield server


@contextmanager
def connector_process(
    store: Any, core: Any, logs_dir: Any, **env: str
) -> Iterator[tuple[str, dict[str, Any], str]]:
    """A cloud connector process over a new bucket of ``store`` (``tests.support.cloud_contract.Store``),
    registered with ``core``, with ``env`` added: (its URL, its registration, the bucket)."""
    from tests.support.cloud_contract import unique
    from tests.support.procs import ServiceProcess, base_env, free_port, uvicorn_argv

    bucket = unique("dsx-hook")
    store.create_bucket(bucket)
    port = free_port()
    url = f"http://127.0.0.1:{port}/{store.name}"
    settings = {
        "DSXCONNECTOR_DSX_CONNECT_URL": core.url,
        "DSXCONNECTOR_CONNECTOR_URL": url,
        "DSXCONNECTOR_ASSET": f"{bucket}/incoming",
        **store.connector_env(),
        **env,
    }
    app = f"connectors.{store.package}.app:app"
    proc = ServiceProcess(
        f"{store.package}-hook-{port}", uvicorn_argv(app, port), base_env(**settings), logs_dir
    )
    proc.start()
    try:
        proc.wait_healthy(f"{url}/readyz", timeout=60)
        yield url, core.connector(url), bucket
    finally:
        proc.stop()


def webhook_stats(connector_url: str) -> dict[str, Any]:
    """The connector's webhook counters, from its ``/readyz``."""
    import httpx

    stats: dict[str, Any] = httpx.get(f"{connector_url.rsplit('/', 1)[0]}/readyz", timeout=10).json()[
        "webhooks"
    ]
    return stats


def scanned_in_one_monitor_job(core: Any, connector_uuid: str, keys: list[str]) -> dict[str, Any]:
    """Wait for a result of each of ``keys``; they must share one job, of kind ``monitor``: that job."""
    from tests.support.procs import wait_for

    def scanned() -> list[dict[str, Any]] | None:
        found = [r for r in core.results(connector=connector_uuid) if r["location"] in keys]
        return found if len(found) == len(keys) else None

    results: list[dict[str, Any]] = wait_for(scanned, timeout=60, what="results of the notified objects")  # type: ignore[assignment]
    (job_id,) = {r["job_id"] for r in results}
    job: dict[str, Any] = core.api.get(f"/scan/jobs/{job_id}").json()
    assert job["kind"] == "monitor" and job["connector_uuid"] == connector_uuid, job
    return job
