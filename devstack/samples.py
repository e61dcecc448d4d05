"""The sample data of ``make up``: ten benign files and two malicious ones, written to the watched
folder or uploaded to the cloud emulator's sample bucket through the storage's own SDK."""

from __future__ import annotations

import base64
import hashlib
import json
import ssl
import struct
import zlib
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from devstack.emulators import (
    EMULATOR_KEYS,
    GRAPH_CLIENT_ID,
    GRAPH_CLIENT_SECRET,
    GRAPH_SITE,
    GRAPH_USER,
    azurite_connection_string,
    fake_graph_dir,
)
from devstack.settings import QUARANTINE_PREFIX, SAMPLE_BUCKET, StackConfig

# The EICAR test file in two base64 halves: no file of this repository holds the string itself.
_EICAR_B64 = (
    "WDVPIVAlQEFQWzRcUFpYNTQoUF4pN0NDKTd9JEVJQ0FSLQ==",
    "U1RBTkRBUkQtQU5USVZJUlVTLVRFU1QtRklMRSEkSCtIKg==",
)
# dsxa_lite's YARA test rule matches this text; split so that this script is not flagged itself.
YARA_MARKER = "DSXA-LITE-TEST-" + "MALWARE-MARKER"


def eicar_bytes() -> bytes:
    """The 68-byte EICAR anti-malware test file, assembled at run time."""
    return b"".join(base64.b64decode(half) for half in _EICAR_B64)


@dataclass(frozen=True)
class SampleFile:
    """One file of the sample folder and the verdict a scan must give it."""

    path: str  # relative to the sample folder, with '/'
    data: bytes
    verdict: str


def _pseudo_random(size: int, seed: bytes) -> bytes:
    blocks: list[bytes] = []
    block = seed
    while len(blocks) * 32 < size:
        block = hashlib.sha256(block).digest()
        blocks.append(block)
    return b"".join(blocks)[:size]


def _tiny_png() -> bytes:
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    header = struct.pack(">IIBBBBB", 1, 1, 8, 2, 0, 0, 0)  # 1x1 pixel, 8-bit RGB
    pixels = zlib.compress(b"\x00\x2a\x7f\xd4")
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", pixels) + chunk(b"IEND", b"")


def sample_files() -> list[SampleFile]:
    """Ten benign files and two malicious ones, in nested folders."""
    benign = {
        "readme.txt": b"This folder is watched by the dsx-connect filesystem connector.\n",
        "notes/meeting-notes.md": b"# Weekly sync\n\n- ship the connector\n- review the dashboard\n",
        "data/customers.csv": b"id,name,city\n"
        + b"".join(b"%d,Customer %d,Lyon\n" % (i, i) for i in range(200)),
        "data/settings.json": json.dumps({"retention_days": 30, "regions": ["eu", "us"]}).encode(),
        "docs/letter.html": b"<!doctype html><html><body><p>Dear customer,</p></body></html>\n",
        "docs/reports/q3-summary.txt": b"Revenue grew 4% over the quarter.\n",
        "code/hello.py": b'print("hello from the sample folder")\n',
        "images/pixel.png": _tiny_png(),
        "logs/app.log": b"".join(
            b"2024-05-01T12:00:%02dZ INFO request served\n" % (i % 60) for i in range(500)
        ),
        "data/blob.bin": _pseudo_random(64 * 1024, b"dsx-connect sample"),
    }
    malicious = {
        "inbox/eicar.com": eicar_bytes(),
        "docs/reports/invoice-2024.txt": f"Invoice 2024-117\n{YARA_MARKER}\nTotal: 1,204 EUR\n".encode(),
    }
    return [SampleFile(p, d, "Benign") for p, d in benign.items()] + [
        SampleFile(p, d, "Malicious") for p, d in malicious.items()
    ]


def write_sample(folder: Path) -> list[SampleFile]:
    """Fill ``folder`` with :func:`sample_files` and return them."""
    files = sample_files()
    for item in files:
        target = folder / item.path
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(item.data)
    return files


@contextmanager
def _sample_drive(
    cfg: StackConfig, create: bool
) -> Iterator[tuple[Callable[[str, bytes], Any], Callable[[str], int]]]:
    """``(put(path, data), count(prefix))`` on the sample drive of the fake Graph, through its back door."""
    import httpx

    drive = f"b!{SAMPLE_BUCKET}"
    ca = ssl.create_default_context(cafile=str(fake_graph_dir(cfg) / "fake-graph.crt"))
    with httpx.Client(base_url=cfg.emulator_url, verify=ca, timeout=30.0) as http:
        if create:
            http.post(
                "/_fake/clients", json={"client_id": GRAPH_CLIENT_ID, "secret": GRAPH_CLIENT_SECRET}
            ).raise_for_status()
            where = {"site_host": GRAPH_SITE[0], "site_path": GRAPH_SITE[1], "user": GRAPH_USER}
            http.post("/_fake/drives", json={"id": drive, "name": "Documents", **where}).raise_for_status()
        yield (
            lambda path, data: http.put(
                f"/_fake/drives/{drive}/content/{path}", content=data
            ).raise_for_status(),
            lambda prefix: len(http.get(f"/_fake/drives/{drive}/files", params={"prefix": prefix}).json()),
        )


@contextmanager
def _sample_bucket(
    cfg: StackConfig, create: bool
) -> Iterator[tuple[Callable[[str, bytes], Any], Callable[[str], int]]]:
    """``(put(key, data), count(prefix))`` on the sample bucket of the emulator, through the storage's SDK."""
    url = cfg.emulator_url
    client: Any
    if cfg.choice.sample == "drive":
        with _sample_drive(cfg, create) as ops:
            yield ops
        return
    if cfg.connector == "aws_s3":
        import boto3

        keys = {k.lower(): v for k, v in EMULATOR_KEYS.items() if k != "AWS_DEFAULT_REGION"}
        client = boto3.client("s3", endpoint_url=url, region_name="us-east-1", **keys)
        if create:
            client.create_bucket(Bucket=SAMPLE_BUCKET)
        pages = client.get_paginator("list_objects_v2")
        ops = (
            lambda key, data: client.put_object(Bucket=SAMPLE_BUCKET, Key=key, Body=data),
            lambda prefix: sum(
                p.get("KeyCount", 0) for p in pages.paginate(Bucket=SAMPLE_BUCKET, Prefix=prefix)
            ),
        )
    elif cfg.connector == "azure_blob_storage":
        from azure.storage.blob import BlobServiceClient

        client = BlobServiceClient.from_connection_string(azurite_connection_string(url))
        container = client.get_container_client(SAMPLE_BUCKET)
        if create:
            container.create_container()
        ops = (
            lambda key, data: container.upload_blob(key, data, overwrite=True),
            lambda prefix: sum(1 for _ in container.list_blobs(name_starts_with=prefix)),
        )
    else:
        from google.auth.credentials import AnonymousCredentials
        from google.cloud import storage

        options = {"api_endpoint": url}
        client = storage.Client(
            project="dsx-sample", credentials=AnonymousCredentials(), client_options=options
        )
        bucket = client.create_bucket(SAMPLE_BUCKET) if create else client.bucket(SAMPLE_BUCKET)
        ops = (
            lambda key, data: bucket.blob(key).upload_from_string(data),
            lambda prefix: sum(1 for _ in client.list_blobs(SAMPLE_BUCKET, prefix=prefix)),
        )
    try:
        yield ops
    finally:
        client.close()  # an open keep-alive connection would hold the emulator's shutdown


def seed_bucket(cfg: StackConfig, files: list[SampleFile]) -> None:
    """Create the sample bucket in the emulator and upload ``files`` to it."""
    with _sample_bucket(cfg, create=True) as (put, _):
        for item in files:
            put(item.path, item.data)


def quarantined_objects(cfg: StackConfig) -> int:
    """Objects under the quarantine prefix of the sample bucket."""
    with _sample_bucket(cfg, create=False) as (_, count):
        return count(QUARANTINE_PREFIX + "/")
