"""Every connector is declared once (``connectors/<package>/manifest.py``): what is spelled elsewhere
(settings defaults, the connector class, the local stack, tasks, compose and Helm) must agree."""

from __future__ import annotations

import importlib
import tomllib
from pathlib import Path

import pytest
import yaml

from connectors.manifest import PACKAGES, ConnectorManifest, manifests
from shared.connector import Connector, ConnectorSettings

pytestmark = pytest.mark.unit

REPO = Path(__file__).resolve().parents[2]
MANIFESTS = manifests()


def test_every_connector_package_is_declared() -> None:
    found = {p.parent.name for p in REPO.glob("connectors/*/connector.py")}
    assert found == set(PACKAGES)
    names = [m.name for m in MANIFESTS.values()]
    ports = [m.port for m in MANIFESTS.values()] + [
        m.emulator_port for m in MANIFESTS.values() if m.emulator_port
    ]
    assert len(set(names)) == len(names) and len(set(ports)) == len(ports), "names and ports are unique"


@pytest.mark.parametrize("package", PACKAGES)
def test_the_connector_and_its_settings_take_their_facts_from_the_manifest(package: str) -> None:
    declared = MANIFESTS[package]
    connector_module = importlib.import_module(f"connectors.{package}.connector")
    settings_module = importlib.import_module(f"connectors.{package}.settings")
    (connector_cls,) = [
        v for v in vars(connector_module).values()
        if isinstance(v, type) and issubclass(v, Connector) and v.__module__ == connector_module.__name__
    ]  # fmt: skip
    assert connector_cls.manifest is declared
    settings_cls = next(
        v for v in vars(settings_module).values()
        if isinstance(v, type) and issubclass(v, ConnectorSettings) and v.__module__ == settings_module.__name__
    )  # fmt: skip
    fields = settings_cls.model_fields
    assert (fields["name"].default, fields["port"].default) == (declared.name, declared.port)
    extras = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["optional-dependencies"]
    assert set(declared.extras) <= set(extras)


def test_the_local_stack_and_the_tasks_use_the_manifests() -> None:
    from devstack.settings import CONNECTORS

    assert list(CONNECTORS) == list(PACKAGES)
    for package, choice in CONNECTORS.items():
        m: ConnectorManifest = MANIFESTS[package]
        assert (choice.app, choice.port, choice.prefix, choice.emulator_port) == (
            m.app,
            m.port,
            m.prefix,
            m.emulator_port,
        )
    import tasks

    for m in MANIFESTS.values():
        component = tasks.COMPONENTS[m.stem]
        assert component.image == m.name and component.version_file == f"connectors/{m.package}/version.py"
        assert any(
            cmd[-2].startswith(f"{m.image}:") and f"CONNECTOR={m.package}" in cmd
            for cmd in tasks.image_build_commands(REPO, m.stem)
        )


@pytest.mark.parametrize("package", PACKAGES)
def test_compose_env_example_and_helm_values_match_the_manifest(package: str) -> None:
    m = MANIFESTS[package]
    compose = yaml.safe_load(
        (REPO / "deploy" / "compose" / f"docker-compose-{m.stem}-connector.yaml").read_text()
    )
    (service,) = compose["services"].values()
    assert service["ports"][0].endswith(f":{m.port}")
    assert service["environment"]["DSXCONNECTOR_CONNECTOR_URL"].endswith(f":{m.port}{m.prefix}}}")
    assert f"{m.image}:" in service["image"]
    assert (REPO / "deploy" / "compose" / f"{m.stem}.env.example").is_file()
    values = yaml.safe_load((REPO / "deploy" / "helm" / "dsx-connect-connectors" / "values.yaml").read_text())
    kind = values["types"][package]
    assert (kind["port"], kind["route"], kind["image"]["repository"]) == (m.port, m.name, m.image)
