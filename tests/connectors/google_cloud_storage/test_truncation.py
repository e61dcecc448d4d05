"""A GCS download cut short is a failed read, never a shorter object scanned as the whole.

The SDK's ``BlobReader`` (what streams objects above 1 MiB in ranged GETs) takes a 416 Range Not
Satisfiable for the end of the object: a storage (or a proxy in between) answering 416 to the
second range ended the stream after 1 MiB as if the object were complete, the connector answered
it chunked, and the worker scanned the first MiB of the object as the object (a false Benign).
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from shared.connector import STREAM_CHUNK_BYTES
from shared.errors import RetryableError
from tests.connectors.google_cloud_storage.conftest import GcsStore
from tests.support.cloud_contract import unique
from tests.support.emulators import Emulator
from tests.support.procs import ServiceProcess, base_env, free_port, uvicorn_argv

pytestmark = [pytest.mark.integration, pytest.mark.anyio]


@pytest.fixture
def proxy(emulator: Emulator, logs_dir: Path) -> Iterator[str]:
    """``tests.support.fault_proxy`` in front of gcp-storage-emulator."""
    port = free_port()
    proc = ServiceProcess(
        f"gcs-fault-proxy-{port}",
        uvicorn_argv("tests.support.fault_proxy:app", port),
        base_env(FAULT_UPSTREAM=emulator.endpoint),
        logs_dir,
    ).start()
    try:
        proc.wait_healthy(f"http://127.0.0.1:{port}/__fault")
        yield f"http://127.0.0.1:{port}"
    finally:
        proc.stop()


async def test_a_download_cut_by_a_416_raises_instead_of_ending_early(store: GcsStore, proxy: str) -> None:
    bucket = unique("cut")
    store.create_bucket(bucket)
    data = os.urandom(3 * 1024 * 1024)
    connector = store.connector(asset=f"{bucket}/in", gcs_endpoint_url=proxy, auth={"enabled": False})
    async with httpx.AsyncClient() as http:
        try:
            # the SDK downloads from the object's mediaLink, which the emulator builds from the Host of
            # the upload: uploaded naming the proxy, the object's ranged GETs go through the proxy (as
            # on GCS, where mediaLink names the endpoint whose answers are cut here)
            upload = await http.post(
                f"{store.endpoint}/upload/storage/v1/b/{bucket}/o",
                params={"uploadType": "media", "name": "in/big.bin"},
                content=data,
                headers={"Host": proxy.removeprefix("http://"), "Content-Type": "application/octet-stream"},
            )
            upload.raise_for_status()
            assert upload.json()["mediaLink"].startswith(f"{proxy}/download/")
            # the first ranged download passes, the next ones are answered 416
            fault = {
                "mode": "status",
                "status": 416,
                "method": "GET",
                "path_contains": "/download/",
                "pass_first": 1,
            }
            (await http.post(f"{proxy}/__fault", json=fault)).raise_for_status()

            content = await connector.read("in/big.bin")
            assert content.chunks is not None and content.size == len(data)
            received = bytearray()
            with pytest.raises(RetryableError, match=f"ended after [0-9]+ of {len(data)} bytes"):
                async for chunk in content.chunks:
                    received += chunk
            # the first range (the SDK asks a byte more than a chunk), not the object
            assert STREAM_CHUNK_BYTES <= len(received) < len(data) and data.startswith(received)
            faults = (await http.get(f"{proxy}/__fault")).json()["faulted"]
            assert faults >= 1  # each 416 the reader took for the end of the object
            # the answer names the size (Content-Length): the core tells a cut answer from a whole one
            assert content.exact

            (await http.post(f"{proxy}/__fault", json={"mode": "pass"})).raise_for_status()
            whole = await connector.read("in/big.bin")
            assert whole.chunks is not None
            assert b"".join([chunk async for chunk in whole.chunks]) == data
        finally:
            await connector.aclose()
