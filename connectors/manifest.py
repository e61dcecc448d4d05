"""Every connector's facts, declared once (standard library only: ``devstack`` reads them).

Each ``connectors/<package>/manifest.py`` holds one :class:`ConnectorManifest`; the connector's
settings take their ``name`` and ``port`` defaults from it, its class points at it, the one
parameterised ``connectors/Dockerfile`` is built with its values (``inv`` passes them), and
``devstack`` and ``tasks`` build their tables from :func:`manifests`. Tests check the
compose files and Helm values against it (``tests/connectors/test_manifests.py``).
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from typing import Literal

#: the connector packages, in the order tables list them
PACKAGES = ("filesystem", "aws_s3", "azure_blob_storage", "google_cloud_storage", "sharepoint", "onedrive")

#: what ``make up CONNECTOR=<package>`` fills with the sample files: a local folder, a bucket of the
#: storage's emulator, or a drive of the fake Graph service
SampleKind = Literal["folder", "bucket", "drive"]


@dataclass(frozen=True, slots=True)
class ConnectorManifest:
    """One connector: its package, name (= route prefix and image name), port and dependencies."""

    package: str  # connectors.<package>
    name: str  # e.g. aws-s3-connector: routes under /<name>, image dsxconnect/<name>
    port: int  # its DSX-Connect port
    title: str  # one line for tables and image labels
    extras: tuple[str, ...] = ()  # pyproject extras it needs beyond the base install (its image
    # installs connectors/<package>/requirements.txt)
    sample: SampleKind = "bucket"  # how the local stack gives it sample data
    emulator: str = ""  # what the local stack runs for it (moto, Azurite, …); "" for none
    emulator_port: int = 0

    @property
    def prefix(self) -> str:
        """The route prefix, ``/<name>``."""
        return f"/{self.name}"

    @property
    def stem(self) -> str:
        """The deploy name: ``aws-s3`` for ``aws-s3-connector`` (compose and env example files)."""
        return self.name.removesuffix("-connector")

    @property
    def app(self) -> str:
        """The ASGI app, for uvicorn."""
        return f"connectors.{self.package}.app:app"

    @property
    def image(self) -> str:
        return f"dsxconnect/{self.name}"


def manifest(package: str) -> ConnectorManifest:
    """The manifest of ``connectors.<package>`` (``KeyError`` for an unknown package)."""
    if package not in PACKAGES:
        raise KeyError(package)
    found = importlib.import_module(f"connectors.{package}.manifest").MANIFEST
    assert isinstance(found, ConnectorManifest)
    return found


def manifests() -> dict[str, ConnectorManifest]:
    """Every connector's manifest, by package."""
    return {package: manifest(package) for package in PACKAGES}
