"""What the deployment tasks share: the repository's folders and its deployable components."""

from __future__ import annotations

import re
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]

DEPLOY = ROOT / "deploy"
COMPOSE_DIR = DEPLOY / "compose"
HELM_DIR = DEPLOY / "helm"
DOCS_DIR = ROOT / "docs"
CHANGELOG = ROOT / "CHANGELOG.md"
IMAGE_NAMESPACE = "dsxconnect"
VERSION_RE = re.compile(r'^__version__\s*=\s*["\'](\d+)\.(\d+)\.(\d+)["\']', re.M)
SEMVER = r"\d+\.\d+\.\d+"


@dataclass(frozen=True)
class DeployComponent:
    """One deployable piece: where its version lives and what its bundle holds."""

    name: str  # bundle name: dsx-connect-<name>-<version>.tar.gz
    version_file: str  # relative to the repository
    image: str  # dsxconnect/<image>
    compose: tuple[str, ...]  # files and folders under deploy/compose
    charts: tuple[str, ...] = ()  # chart folders under deploy/helm
    helm_examples: tuple[str, ...] = ()  # files under deploy/helm/examples
    connector_key: str = ""  # entry of the connectors chart's `connectors` values


def _manifests() -> list[Any]:
    """Every connector's declaration (``connectors/<package>/manifest.py``)."""
    if str(ROOT) not in sys.path:
        sys.path.insert(0, str(ROOT))
    from connectors.manifest import manifests

    return list(manifests().values())


#: what a connector's bundle holds beyond its compose file and env example
CONNECTOR_EXTRA_FILES = {"google_cloud_storage": ("gcp/README.md",)}


def _connector(name: str, package: str, extra: tuple[str, ...] = ()) -> DeployComponent:
    return DeployComponent(
        name=name,
        version_file=f"connectors/{package}/version.py",
        image=f"{name}-connector",
        compose=(f"docker-compose-{name}-connector.yaml", f"{name}.env.example", "certs/README.md", *extra),
        charts=("dsx-connect-connectors",),
        helm_examples=("connectors-values-auth-tls.yaml",),
        connector_key=name,
    )


COMPONENTS: dict[str, DeployComponent] = {
    "core": DeployComponent(
        name="core",
        version_file="dsx_connect/version.py",
        image="dsx-connect",
        compose=(
            "docker-compose-dsx-connect-all-services.yaml",
            "docker-compose-dsx-connect.secrets.yaml",
            "docker-compose-dsx-connect.sentinel.yaml",  # Redis primary + replica + 3 Sentinels
            "docker-compose-dsxa.yaml",  # the optional DSXA appliance, beside the core or on its own
            "core.env.example",
            "make_secrets.py",
            "rsyslog",
            "certs/README.md",
        ),
        charts=("dsx-connect",),
        helm_examples=("dsx-connect-values-auth-tls.yaml",),
    ),
    "dsxa-lite": DeployComponent(
        name="dsxa-lite",
        version_file="dsxa_lite/version.py",
        image="dsxa-lite",
        compose=("docker-compose-dsxa-lite.yaml", "dsxa-lite.env.example", "dsxa-lite/README.md"),
    ),
    **{m.stem: _connector(m.stem, m.package, CONNECTOR_EXTRA_FILES.get(m.package, ())) for m in _manifests()},
}
#: charts whose version and appVersion follow the core's version
CORE_CHARTS = ("dsx-connect", "dsx-connect-connectors")


class DeployError(Exception):
    """A deployment task cannot go on; the message says why."""
